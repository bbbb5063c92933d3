"""Small known-content clips for the extraction tests (not collected by pytest)."""
from __future__ import annotations

import functools
from pathlib import Path

import av
import numpy as np

from avepipe.data.video_writer import solid_frames, tone, write_test_video

COLOURS = [(230, 40, 40), (40, 200, 60), (50, 70, 220), (240, 220, 30)]
TONES = [440.0, 1250.0, 2600.0, 700.0]

# Lossless video (x264 qp=0 in 4:4:4) and PCM audio in Matroska: static and changing
# clips decode to identical colours and samples, so features can be compared at 0.999.
LOSSLESS = {"video_codec": "libx264", "options": {"qp": "0"}, "pix_fmt": "yuv444p", "audio_codec": "pcm_s16le"}


def simple_clip(path: Path, seconds: float = 2.0, fps: float = 4, size: tuple[int, int] = (64, 48),
                channels: int = 1, sample_rate: int = 16000, audio: bool = True, **writer) -> Path:
    """A clip whose second t is colour COLOURS[t] with tone TONES[t] (cycled)."""
    whole = int(np.ceil(seconds))
    per_second = max(1, int(round(fps)))
    frames = solid_frames([COLOURS[t % 4] for t in range(whole)], per_second, *size)
    frames = frames[:max(1, int(round(seconds * fps)))]
    waveform = None
    if audio:
        mono = np.concatenate([tone(TONES[t % 4], 1.0, sample_rate) for t in range(whole)])
        mono = mono[:int(round(seconds * sample_rate))]
        waveform = np.stack([mono * (0.5 + 0.1 * c) for c in range(channels)])
    return write_test_video(path, frames, fps, audio=waveform, sample_rate=sample_rate, **writer)


def decode_all(path: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    """Every frame (PTS seconds from the stream start, 224x224 RGB): the reference the streaming decoder must match."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        start = float(stream.start_time * stream.time_base)
        pts, images = [], []
        for frame in container.decode(stream):
            pts.append(float(frame.pts * frame.time_base) - start)
            images.append(frame.to_ndarray(width=224, height=224, format="rgb24"))
    return np.asarray(pts), images


@functools.lru_cache(maxsize=None)
def random_encoders():
    """Real VGG-19 / VGGish architectures with seeded random weights, built once per test process."""
    from avepipe.extract.backbones import build_encoders

    return build_encoders(random_seed=0, device="cpu")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
