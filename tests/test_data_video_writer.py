"""The test-video writer: what is written decodes back with the intended timing, size, colours and audio."""
from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from avepipe.data.video_writer import solid_frames, tone, write_test_video


def _decode(path):
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        info = {"width": video.codec_context.width, "height": video.codec_context.height,
                "rate": video.average_rate, "channels": audio.codec_context.channels if audio else 0,
                "sample_rate": audio.codec_context.sample_rate if audio else None}
        frames = [(float(f.time), f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    return info, frames


def test_variable_frame_rate_odd_size_and_51_audio(tmp_path):
    pts = [0.0, 0.1, 0.35, 0.5, 1.2, 1.25]
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255)]
    audio = np.stack([tone(300 + 100 * c, 1.3, 48000) for c in range(6)])
    path = write_test_video(tmp_path / "vfr odd ü.mp4", solid_frames(colours, 1, 223, 97), 10, pts=pts,
                            audio=audio, sample_rate=48000)
    info, frames = _decode(path)
    assert (info["width"], info["height"]) == (223, 97)
    assert info["channels"] == 6 and info["sample_rate"] == 48000
    assert [t for t, _ in frames] == pytest.approx(pts, abs=1e-4)
    for (_, image), colour in zip(frames, colours):
        assert np.abs(image[48, 111].astype(int) - colour).max() < 12


@pytest.mark.parametrize("fps, frames_written", [(Fraction(30000, 1001), 30), (120, 24), (1, 3)])
def test_constant_frame_rates(tmp_path, fps, frames_written):
    path = write_test_video(tmp_path / "cfr.mp4", solid_frames([(200, 30, 30)], frames_written, 64, 48), fps)
    info, frames = _decode(path)
    assert info["rate"] == Fraction(fps)
    assert info["channels"] == 0  # no audio stream written
    assert len(frames) == frames_written
    assert [t for t, _ in frames] == pytest.approx([k / float(fps) for k in range(frames_written)], abs=1e-3)


@pytest.mark.parametrize("sample_rate, channels", [(8000, 1), (22050, 2), (44100, 1)])
def test_audio_layouts_and_rates(tmp_path, sample_rate, channels):
    signal = np.stack([tone(440 * (c + 1), 1.0, sample_rate) for c in range(channels)])
    path = write_test_video(tmp_path / "a.mp4", solid_frames([(0, 0, 0)], 4, 32, 32), 4, audio=signal,
                            sample_rate=sample_rate)
    info, _ = _decode(path)
    assert info["channels"] == channels and info["sample_rate"] == sample_rate
    with av.open(str(path)) as container:
        decoded = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)
    # AAC keeps the tone: over a one-second window bin k is k Hz, and channel 0 peaks at 440 Hz
    spectrum = np.abs(np.fft.rfft(decoded[0, :sample_rate]))
    assert abs(np.argmax(spectrum) - 440) <= 2


def test_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="strictly increasing"):
        write_test_video(tmp_path / "x.mp4", solid_frames([(0, 0, 0)], 2, 16, 16), pts=[0.5, 0.5])
    with pytest.raises(ValueError, match="1, 2 or 6 channels"):
        write_test_video(tmp_path / "y.mp4", solid_frames([(0, 0, 0)], 2, 16, 16), audio=np.zeros((3, 100)))
