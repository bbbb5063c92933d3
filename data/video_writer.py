"""Write small real video files (MP4/MKV via PyAV) with exactly chosen frames, timing and audio.

Used by the synthetic dataset generator and by tests that need a file whose
content is known: constant or variable frame rate, odd frame sizes, any common
channel layout and sample rate, or no audio at all.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# Timestamps of variable-frame-rate files are written in this time base (1/90000 s, the MPEG clock).
VFR_TIME_BASE = Fraction(1, 90000)

_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}


def _has_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except Exception:  # PyAV raises different types across versions for an unknown codec
        return False
    return True


def default_video_codec() -> str:
    """H.264 (``libx264``) when this FFmpeg build has it, else MPEG-4 Part 2."""
    return "libx264" if _has_encoder("libx264") else "mpeg4"


def _pix_fmt(codec: str, width: int, height: int) -> str:
    # 4:2:0 chroma needs even sizes in libx264; 4:4:4 accepts any size (High 4:4:4 profile).
    # The mpeg4 encoder pads odd sizes itself and only takes 4:2:0.
    if codec.startswith("libx264") and (width % 2 or height % 2):
        return "yuv444p"
    return "yuv420p"


def _as_fraction(fps: float | Fraction | str) -> Fraction:
    if isinstance(fps, float):
        return Fraction(fps).limit_denominator(1001)
    return Fraction(fps)


def _pts_ticks(pts: Sequence[float]) -> list[int]:
    """Presentation times in seconds as ticks of ``VFR_TIME_BASE``, checked strictly increasing."""
    ticks = [round(float(t) / VFR_TIME_BASE) for t in pts]
    if any(b <= a for a, b in zip(ticks, ticks[1:])):
        raise ValueError("pts must be strictly increasing")
    return ticks


def _audio_stream(container, audio: np.ndarray, codec: str, sample_rate: int, bit_rate: int | None):
    """The audio stream for float ``[C, S]`` audio (C in 1, 2, 6)."""
    if audio.shape[0] not in _LAYOUTS:
        raise ValueError(f"audio must have 1, 2 or 6 channels, got {audio.shape[0]}")
    stream = container.add_stream(codec, rate=sample_rate, layout=_LAYOUTS[audio.shape[0]])
    if bit_rate:
        stream.bit_rate = bit_rate
    return stream


def write_test_video(
    path: str | Path,
    frames: Iterable[np.ndarray] | np.ndarray,
    fps: float | Fraction | str = 8,
    *,
    pts: Sequence[float] | None = None,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    video_codec: str | None = None,
    audio_codec: str = "aac",
    pix_fmt: str | None = None,
    options: dict[str, str] | None = None,
    audio_bit_rate: int | None = None,
) -> Path:
    """Encode ``frames`` (uint8 RGB ``[H, W, 3]`` each, or one ``[N, H, W, 3]`` array) to ``path``.

    ``fps`` may be fractional (``Fraction(30000, 1001)`` or ``"30000/1001"``). For a
    variable frame rate give ``pts``: the presentation time in seconds of every frame
    (strictly increasing); ``fps`` is then only the nominal rate stored in the header.
    ``audio`` is float ``[C, S]`` in [-1, 1] (or ``[S]`` for mono), C in 1, 2, 6
    (mono, stereo, 5.1); ``None`` writes a file without an audio stream.
    Odd frame sizes work: libx264 then uses yuv444p (see ``_pix_fmt``).
    ``options`` are passed to the video encoder (e.g. ``{"crf": "18"}``).
    """
    path = Path(path)
    frame_iter = iter(frames)
    first = next(frame_iter, None)
    if first is None:
        raise ValueError("write_test_video needs at least one frame")
    height, width = first.shape[:2]
    codec = video_codec or default_video_codec()
    rate = _as_fraction(fps)
    pts_ticks = None if pts is None else _pts_ticks(pts)

    with av.open(str(path), mode="w") as container:
        vstream = container.add_stream(codec, rate=rate, options=dict(options or {}))
        vstream.width, vstream.height = width, height
        vstream.pix_fmt = pix_fmt or _pix_fmt(codec, width, height)
        if pts_ticks is not None:
            vstream.codec_context.time_base = VFR_TIME_BASE
            vstream.time_base = VFR_TIME_BASE
        audio = None if audio is None else np.atleast_2d(np.asarray(audio, dtype=np.float32))
        astream = None if audio is None else _audio_stream(container, audio, audio_codec, sample_rate, audio_bit_rate)

        for index, rgb in enumerate(_chain(first, frame_iter)):
            if rgb.shape[:2] != (height, width):
                raise ValueError(f"frame {index} is {rgb.shape[1]}x{rgb.shape[0]}, expected {width}x{height}")
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb, dtype=np.uint8), format="rgb24")
            if pts_ticks is not None:
                frame.pts = pts_ticks[index]
                frame.time_base = VFR_TIME_BASE
            else:
                frame.pts = index
                frame.time_base = 1 / rate
            container.mux(vstream.encode(frame))
        container.mux(vstream.encode(None))

        if astream is not None:
            _encode_audio(container, astream, audio, sample_rate)
    return path


def _chain(first: np.ndarray, rest: Iterable[np.ndarray]):
    yield first
    yield from rest


def _encode_audio(container, stream, audio: np.ndarray, sample_rate: int) -> None:
    """Feed the encoder whole codec frames (AAC takes 1024 samples per frame)."""
    layout = _LAYOUTS[audio.shape[0]]
    fmt = stream.codec_context.format.name if stream.codec_context.format else "fltp"
    chunk = stream.codec_context.frame_size or 1024
    for start in range(0, audio.shape[1], chunk):
        block = audio[:, start:start + chunk]
        if block.shape[1] < chunk:  # pad the tail: not every encoder accepts a short last frame
            block = np.pad(block, ((0, 0), (0, chunk - block.shape[1])))
        block = np.ascontiguousarray(np.clip(block, -1.0, 1.0))
        if not fmt.endswith("p"):  # packed formats interleave channels: shape [1, S*C]
            block = block.T.reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(_to_sample_format(block, fmt), format=fmt, layout=layout)
        frame.sample_rate = sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, sample_rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def _to_sample_format(block: np.ndarray, fmt: str) -> np.ndarray:
    base = fmt.rstrip("p")
    if base == "flt":
        return block.astype(np.float32)
    if base == "dbl":
        return block.astype(np.float64)
    if base == "s16":
        return np.round(block * 32767).astype(np.int16)
    if base == "s32":
        return np.round(block * 2147483647.0).astype(np.int32)
    raise ValueError(f"unsupported audio sample format {fmt}")


def tone(frequency: float, seconds: float, sample_rate: int = 16000, amplitude: float = 0.5) -> np.ndarray:
    """A mono sine tone ``[S]`` float32: the simplest audio with a known spectrum."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def solid_frames(colours: Sequence[Sequence[int]], count_each: int, width: int, height: int) -> np.ndarray:
    """``[len(colours) * count_each, H, W, 3]`` uint8: each RGB colour held for ``count_each`` frames."""
    blocks = [np.broadcast_to(np.asarray(c, np.uint8), (count_each, height, width, 3)) for c in colours]
    return np.concatenate(blocks)
