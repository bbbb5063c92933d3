"""VGGish's log-mel front end, reproduced number for number.

VGGish was trained on one exact spectrogram; any other (librosa's default mel
filters, power instead of magnitude, a symmetric window) feeds it inputs it
never saw. Everything here follows the reference ``vggish_input`` /
``mel_features`` code of the AudioSet release.
"""
from __future__ import annotations

import librosa
import numpy as np

from avepipe.extract.sampling import SAMPLE_RATE

WINDOW_LENGTH = 400            # 25 ms
HOP_LENGTH = 160               # 10 ms
FFT_LENGTH = 512               # 2 ** ceil(log2(WINDOW_LENGTH))
NUM_MEL_BANDS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96            # 0.96 s per example
EXAMPLE_HOP = EXAMPLE_FRAMES * HOP_LENGTH  # 15360 samples: examples framed from a whole clip (--preset ave)
_MEL_BREAK_HZ = 700.0
_MEL_HIGH_Q = 1127.0


def hertz_to_mel(hertz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale (natural-log form), as VGGish uses it."""
    return _MEL_HIGH_Q * np.log1p(np.asarray(hertz, dtype=np.float64) / _MEL_BREAK_HZ)


def vggish_mel_matrix(
    num_mel_bands: int = NUM_MEL_BANDS,
    num_spectrogram_bins: int = FFT_LENGTH // 2 + 1,
    sample_rate: int = SAMPLE_RATE,
    lower_hz: float = MEL_MIN_HZ,
    upper_hz: float = MEL_MAX_HZ,
) -> np.ndarray:
    """``[num_spectrogram_bins, num_mel_bands]`` weights of VGGish's mel filterbank.

    Why not ``librosa.filters.mel``: librosa draws each triangle linearly in Hz
    between mel-spaced edges (and defaults to the Slaney scale with area
    normalisation); VGGish draws the triangles linearly in the *mel* domain,
    leaves them unnormalised (peak 1) and zeroes the DC bin. Even
    ``librosa.filters.mel(htk=True, norm=None)`` differs in every band, so the
    reference construction is reproduced here.
    """
    bins_mel = hertz_to_mel(np.linspace(0.0, sample_rate / 2.0, num_spectrogram_bins))
    edges = np.linspace(hertz_to_mel(lower_hz), hertz_to_mel(upper_hz), num_mel_bands + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (center - lower)
    falling = (upper - bins_mel[:, None]) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0  # the DC bin never contributes
    return weights


_MEL_MATRIX = vggish_mel_matrix()
# The periodic Hann window VGGish uses (scipy's get_window("hann") to the last bit; written out
# because importing scipy.signal cost seconds of every cold `avepipe localize`).
_WINDOW = 0.5 + 0.5 * np.cos(np.linspace(-np.pi, np.pi, WINDOW_LENGTH + 1)[:-1])


def segment_waveform(waveform_16k: np.ndarray, segments: int, hop: int = SAMPLE_RATE) -> np.ndarray:
    """``[segments, 16000]``: the second of samples from ``hop * t`` on, for every t; zero-padded past the end."""
    wave = np.asarray(waveform_16k, dtype=np.float64).reshape(-1)
    padded = np.zeros(max(segments - 1, 0) * hop + SAMPLE_RATE, dtype=np.float64)
    used = min(wave.size, padded.size)
    padded[:used] = wave[:used]
    starts = np.arange(segments)[:, None] * hop
    return padded[starts + np.arange(SAMPLE_RATE)]


def log_mel_examples(waveform_16k: np.ndarray, segments: int, hop: int = SAMPLE_RATE) -> np.ndarray:
    """One VGGish input example ``[96, 64]`` per segment: ``[T, 96, 64]`` float32.

    Example t is the first 96 frames (no centre padding) of the samples from ``hop * t``
    on. ``hop = 16000``: segment t is samples ``[16000 t, 16000 (t + 1))`` (the default).
    ``hop = EXAMPLE_HOP``: the examples the VGGish reference frames from one whole
    clip, example t covering ``[0.96 t, 0.96 t + 0.96)`` s (the AVE recipe).
    """
    chunks = segment_waveform(waveform_16k, segments, hop)
    frames = librosa.util.frame(chunks, frame_length=WINDOW_LENGTH, hop_length=HOP_LENGTH, axis=-1)
    frames = np.swapaxes(frames, -1, -2)  # [T, 98, 400]
    magnitude = np.abs(np.fft.rfft(frames * _WINDOW, n=FFT_LENGTH, axis=-1))
    log_mel = np.log(magnitude @ _MEL_MATRIX + LOG_OFFSET)
    return log_mel[:, :EXAMPLE_FRAMES].astype(np.float32)
