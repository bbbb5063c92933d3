"""Log-mel against an independent plain-NumPy reading of the spec's formulas."""
from __future__ import annotations

import math

import numpy as np

from avepipe.extract.logmel import log_mel_examples


def _reference_mel_matrix() -> np.ndarray:
    """HTK mel, 64 triangles linear in mel between 125 and 7500 Hz, 257 FFT bins, DC bin zero."""
    def to_mel(hz):
        return 1127.0 * np.log(1.0 + hz / 700.0)

    bin_mels = [to_mel(8000.0 * k / 256) for k in range(257)]
    lo, hi = to_mel(125.0), to_mel(7500.0)
    edges = [lo + (hi - lo) * i / 65 for i in range(66)]
    matrix = np.zeros((257, 64))
    for band in range(64):
        left, centre, right = edges[band], edges[band + 1], edges[band + 2]
        for k in range(1, 257):  # k = 0 (DC) stays zero
            m = bin_mels[k]
            if left < m <= centre:
                matrix[k, band] = (m - left) / (centre - left)
            elif centre < m < right:
                matrix[k, band] = (right - m) / (right - centre)
    return matrix


def _reference_log_mel(waveform: np.ndarray, segments: int) -> np.ndarray:
    window = np.array([0.5 - 0.5 * math.cos(2 * math.pi * n / 400) for n in range(400)])  # periodic Hann
    mel = _reference_mel_matrix()
    out = np.zeros((segments, 96, 64))
    for t in range(segments):
        chunk = np.zeros(16000)
        piece = waveform[16000 * t:16000 * (t + 1)]
        chunk[:len(piece)] = piece
        for f in range(96):
            frame = chunk[160 * f:160 * f + 400] * window
            magnitude = np.abs(np.fft.fft(frame, 512))[:257]
            out[t, f] = np.log(magnitude @ mel + 0.01)
    return out


def _test_signal(seconds: float) -> np.ndarray:
    n = int(seconds * 16000)
    time = np.arange(n) / 16000
    noise = np.random.default_rng(7).normal(0, 0.05, n)
    return (0.5 * np.sin(2 * np.pi * 440 * time) + 0.3 * np.sin(2 * np.pi * 3000 * time) + noise).astype(np.float32)


def test_log_mel_matches_independent_reference():
    wave = _test_signal(2.0)
    ours = log_mel_examples(wave, segments=2)
    assert ours.shape == (2, 96, 64) and ours.dtype == np.float32
    assert np.abs(ours - _reference_log_mel(wave.astype(np.float64), 2)).max() < 1e-4


def test_one_second_is_one_example():
    assert log_mel_examples(_test_signal(1.0), segments=1).shape == (1, 96, 64)


def test_short_audio_is_zero_padded():
    wave = _test_signal(2.5)
    ours = log_mel_examples(wave, segments=3)
    assert ours.shape == (3, 96, 64)
    assert np.abs(ours - _reference_log_mel(wave.astype(np.float64), 3)).max() < 1e-4
    # the last segment's second half is silence: log(0 + 0.01) in every band
    assert np.allclose(ours[2, 60:], np.log(0.01))
    assert not np.allclose(ours[2, :40], np.log(0.01))


def test_longer_audio_is_cropped_to_segments():
    wave = _test_signal(2.0)
    assert np.array_equal(log_mel_examples(wave, segments=1), log_mel_examples(wave[:16000], segments=1))
