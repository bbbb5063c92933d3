"""``--preset ave``: the two steps of the AVE recipe that need OpenCV and resampy (the ``ave`` extra).

The released AVE features resized frames with ``cv2.resize`` and resampled audio
with resampy, the VGGish reference's resampler. Both are used here as they are,
not re-implemented: OpenCV's uint8 bilinear resize uses fixed-point weights and
its own rounding, and only OpenCV itself is guaranteed to round like OpenCV.
"""
from __future__ import annotations

import numpy as np

from avepipe.errors import UserError
from avepipe.extract.sampling import AVE_CLIP_SECONDS, SAMPLE_RATE

WAV_SAMPLE_RATE = 44100  # the AVE audio was a 16-bit WAV at 44.1 kHz
_MISSING = ("--preset ave needs the optional 'ave' extra (opencv-python-headless, resampy): "
            "pip install 'avepipe[ave]'")


def require_ave_extra() -> None:
    """UserError naming the extra when OpenCV or resampy is not installed (checked before any decoding)."""
    try:    # the optional 'ave' extra: imported where it is used, so avepipe runs without it
        import cv2  # noqa: F401
        import resampy  # noqa: F401
    except ImportError as exc:
        raise UserError(f"{_MISSING} ({exc})") from None


def opencv_resize(rgb: np.ndarray, size: int) -> np.ndarray:
    """``cv2.resize(rgb, (size, size))``: bilinear (``INTER_LINEAR``), no antialiasing, uint8 in and out."""
    import cv2  # the optional 'ave' extra

    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_LINEAR)


def ave_clip_waveforms(pcm16: np.ndarray, sample_rate: int = WAV_SAMPLE_RATE) -> np.ndarray:
    """int16 ``[C, S]`` -> float64 16 kHz waveform, one 10-second block after another.

    Each block, cut from the 16-bit samples at ``10 b`` s, goes through the VGGish
    reference input steps as its own clip: /32768, mean over channels, resampy to
    16 kHz. Each is then cropped or zero-padded to exactly 10 s, so block ``b``
    starts at sample ``160000 b`` (its examples use only the first 9.615 s). Kept in
    float64 like the reference: float32 rounding noise alone moves quiet mel bands of
    the log-mel (log(mel + 0.01)) by up to 5e-5.
    """
    import resampy  # the optional 'ave' extra

    block = AVE_CLIP_SECONDS * sample_rate
    out_block = AVE_CLIP_SECONDS * SAMPLE_RATE
    blocks = -(-pcm16.shape[1] // block)
    waveform = np.zeros(blocks * out_block, np.float64)
    for b in range(blocks):
        mono = (pcm16[:, b * block:(b + 1) * block] / 32768.0).mean(axis=0)
        resampled = resampy.resample(mono, sample_rate, SAMPLE_RATE)[:out_block]
        waveform[b * out_block:b * out_block + len(resampled)] = resampled
    return waveform
