"""The original AVE feature recipe, re-implemented from its description with the real references.

Frames come from the FFmpeg reader (imageio-ffmpeg runs its own bundled ``ffmpeg``
binary, as imageio did in 2018), are counted and indexed as the AVE scripts did and
resized with OpenCV itself. Audio goes through ``ffmpeg -ar 44100`` to a 16-bit WAV
and then the VGGish reference input code (``torchvggish.vggish_input``). The network
is a plain ``torch.nn.functional`` VGG-19 read straight from the Keras HDF5 file.
Nothing here imports avepipe's extraction code.
"""
from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import cv2
import h5py
import imageio_ffmpeg
import numpy as np
import torch
import torch.nn.functional as F
from torchvggish import vggish_input

from avepipe.data.video_writer import write_test_video
from benchmarks._backbones_helpers import KERAS_VGG19_LAYERS, POOL_AFTER

WIDTH, HEIGHT = 160, 120
WAV_RATE = 44100
TONES_HZ = [300.0, 620.0, 1100.0, 1900.0, 3000.0]  # window w of 0.96 s plays TONES_HZ[w % 5]
# Lossless video and 16-bit PCM: the WAV the reference reads holds exactly the samples written.
LOSSLESS = {"video_codec": "libx264", "options": {"qp": "0"}, "pix_fmt": "yuv444p", "audio_codec": "pcm_s16le"}


def textures(content_ids: np.ndarray) -> np.ndarray:
    """``[N, 120, 160, 3]`` uint8: an 8x6 grid of random colours per content id on a gradient.

    Sharp block edges and a ramp make a bilinear resize depend on exactly how it
    weighs and rounds; different ids are different pictures.
    """
    ramp = np.linspace(0, 60, WIDTH)[None, :, None]
    out = np.empty((len(content_ids), HEIGHT, WIDTH, 3), np.uint8)
    for row, content in enumerate(content_ids):
        blocks = np.random.default_rng(int(content)).integers(0, 196, (6, 8, 3))
        out[row] = np.kron(blocks, np.ones((20, 20, 1))) + ramp
    return out


def windowed_tones(samples: int) -> np.ndarray:
    """int16 stereo ``[2, S]`` at 44.1 kHz: window ``w`` = [0.96 w, 0.96 (w + 1)) s plays ``TONES_HZ[w % 5]``.

    The channels differ in level, so a mix that is not the channel mean shows.
    """
    t = np.arange(samples) / WAV_RATE
    window = np.floor(t / 0.96).astype(int)
    mono = np.sin(2 * np.pi * np.asarray(TONES_HZ)[window % len(TONES_HZ)] * t)
    return np.round(np.stack([0.35 * mono, 0.2 * mono]) * 32767).astype(np.int16)


def write_clip(path: Path, fps: Fraction, seconds: float, picture_seconds: float | None = None,
               first_frame: int = 0, first_sample: int = 0) -> Path:
    """A lossless clip: frame j shows picture j (or floor(j / fps / picture_seconds)), audio ``windowed_tones``.

    ``first_frame``/``first_sample`` offset both, so a block of a longer clip can be written as its own file.
    """
    count = int(round(seconds * fps))
    index = np.arange(first_frame, first_frame + count)
    content = index if picture_seconds is None else np.floor(index / float(fps) / picture_seconds).astype(int)
    pcm = windowed_tones(first_sample + int(round(seconds * WAV_RATE)))[:, first_sample:]
    return write_test_video(path, textures(content), fps, audio=pcm / 32767.0, sample_rate=WAV_RATE, **LOSSLESS)


def reader_frames(path: Path) -> tuple[dict, list[np.ndarray]]:
    """The FFmpeg reader's metadata and every frame, full resolution RGB24."""
    frames = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    meta = next(frames)
    width, height = meta["size"]
    return meta, [np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in frames]


def original_frame_indices(n: int, seconds: int = 10, sample_num: int = 16) -> list[int]:
    """``video_frame_sample`` of the AVE scripts, with ``frame_interval = int(n / seconds)``."""
    frame_interval = int(n / seconds)
    return [int(l * frame_interval + (i * 1.0 / sample_num) * frame_interval)
            for l in range(seconds) for i in range(sample_num)]


def original_frames(path: Path, seconds: int = 10) -> list[np.ndarray]:
    """The 16 * ``seconds`` 224x224 frames the AVE scripts feed VGG-19 (``seconds`` < 10 for a shorter last block)."""
    meta, frames = reader_frames(path)
    n = int(round(meta["duration"] * meta["fps"]))
    return [cv2.resize(frames[k], (224, 224)) for k in original_frame_indices(n, seconds)]


def original_examples(path: Path, tmp: Path) -> np.ndarray:
    """``[N, 96, 64]``: ``ffmpeg -ar 44100`` to a 16-bit WAV, then the VGGish reference on the whole clip."""
    wav = tmp / (path.stem + ".wav")
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(path), "-vn", "-ar",
                    str(WAV_RATE), "-acodec", "pcm_s16le", str(wav)], check=True)
    return vggish_input.wavfile_to_examples(str(wav), return_tensor=False)


def keras_vgg19(weights_file: Path):
    """Keras ``VGG19(include_top=False)`` up to ``block5_pool`` with Caffe preprocessing, from the HDF5 file."""
    layers = []
    with h5py.File(weights_file, "r") as f:
        for name, _, _ in KERAS_VGG19_LAYERS:
            group = f[name]
            kernel, bias = (np.asarray(group[n]) for n in group.attrs["weight_names"])
            layers.append((name, torch.from_numpy(kernel).permute(3, 2, 0, 1).contiguous(), torch.from_numpy(bias)))

    def pool5(rgb: np.ndarray) -> np.ndarray:
        bgr = rgb[..., ::-1].astype(np.float32) - np.array([103.939, 116.779, 123.68], np.float32)
        x = torch.from_numpy(np.ascontiguousarray(bgr)).permute(2, 0, 1)[None]
        with torch.no_grad():
            for name, kernel, bias in layers:
                x = F.relu(F.conv2d(x, kernel, bias, padding=1))
                if name in POOL_AFTER:
                    x = F.max_pool2d(x, 2)
        return x[0].permute(1, 2, 0).numpy()

    return pool5


def original_visual(frames: list[np.ndarray], pool5) -> np.ndarray:
    """``[T, 7, 7, 512]``: the mean of each second's 16 maps (identical frames computed once)."""
    maps: dict[bytes, np.ndarray] = {}
    for frame in frames:
        if frame.tobytes() not in maps:
            maps[frame.tobytes()] = pool5(frame)
    per_frame = np.stack([maps[frame.tobytes()] for frame in frames]).astype(np.float64)
    return per_frame.reshape(-1, 16, 7, 7, 512).mean(axis=1)
