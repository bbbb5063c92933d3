"""Decoding without the CNNs: bad files, rotation, streaming frame selection, mono mix and resampling."""
from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from avepipe.data.video_writer import solid_frames, tone, write_test_video
from avepipe.extract.decode import (EmptyFileError, NotMediaError, NoVideoStreamError, TruncatedFileError, decode_audio,
                            decode_video, display_size, frame_converter, probe, upright)
from avepipe.extract import decode as decode_module
from avepipe.extract.sampling import frame_for_targets, target_times
from tests._extract_helpers import LOSSLESS, decode_all, simple_clip


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return tmp_path_factory.mktemp("decode")


def test_zero_byte_file(clips):
    path = clips / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(EmptyFileError, match=r"empty file \(0 bytes\)"):
        decode_video(path)


def test_text_file_named_mp4(clips):
    path = clips / "notes.mp4"
    path.write_text("this is a shopping list, not a video\n" * 10)
    with pytest.raises(NotMediaError, match="not a media file FFmpeg can read"):
        decode_video(path)


def test_truncated_mp4(clips):
    good = simple_clip(clips / "whole.mp4", seconds=2, fps=4)
    data = good.read_bytes()
    path = clips / "truncated.mp4"
    path.write_bytes(data[: len(data) // 2])  # the index (moov, written last) is gone
    with pytest.raises(TruncatedFileError, match="damaged or truncated media file"):
        decode_video(path)


def test_audio_only_file(clips):
    path = clips / "song.m4a"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000, layout="mono")
        wave = tone(440, 1.0)
        for start in range(0, 16000, 1024):
            block = np.pad(wave[start:start + 1024], (0, max(0, start + 1024 - 16000)))
            frame = av.AudioFrame.from_ndarray(block[None], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    assert not probe(path).has_video
    with pytest.raises(NoVideoStreamError, match=r"no video stream \(contains: audio\)"):
        decode_video(path)


def test_corrupt_packet_in_the_middle_is_decoded_past(clips):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (30, 64, 64, 3), dtype=np.uint8)
    good = write_test_video(clips / "noisy.mp4", frames, 10, options={"g": "5"})
    with av.open(str(good)) as container:
        packets = [(p.pos, p.size) for p in container.demux(container.streams.video[0]) if p.size]
    data = bytearray(good.read_bytes())
    pos, size = packets[12]
    data[pos:pos + size] = rng.integers(0, 255, size, dtype=np.uint8).tobytes()
    path = clips / "corrupt.mp4"
    path.write_bytes(bytes(data))
    video = decode_video(path, fps=4)
    assert "decoded past 1 corrupt packet(s)" in video.notes
    assert video.pts[-1] > 2.5  # frames after the damage were decoded
    assert decode_video(good, fps=4).notes == []


def _rotated_clip(clips, rotation: int):
    """Landscape 96x64 picture, red top-left quadrant; the display matrix turns it by `rotation` degrees CCW."""
    image = np.zeros((64, 96, 3), np.uint8)
    image[:32, :48] = (255, 0, 0)
    path = clips / f"rotated{rotation}.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=4, options={"qp": "0"})
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv444p"
        if rotation:
            stream.set_display_rotation(rotation)
        for index in range(4):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotation_metadata_is_honoured(clips, rotation):
    path = _rotated_clip(clips, rotation)
    frame = decode_video(path, fps=4).frames[0]
    red = frame[..., 0] > 128
    # Where the red top-left corner lands after a CCW turn: 90 -> bottom-left, -90 -> top-right, 180 -> bottom-right.
    corner = {90: (slice(112, None), slice(None, 112)), -90: (slice(None, 112), slice(112, None)),
              180: (slice(112, None), slice(112, None))}[rotation]
    assert red[corner].mean() > 0.95
    assert red.mean() == pytest.approx(0.25, abs=0.02)


@pytest.mark.parametrize("rotation, shown", [(0, (96, 64)), (90, (64, 96)), (-90, (64, 96)), (180, (96, 64))])
def test_display_size_is_the_stored_size_turned_by_the_rotation(clips, rotation, shown):
    path = _rotated_clip(clips, rotation)
    assert display_size(path) == shown
    assert (probe(path).width, probe(path).height) == (96, 64)      # the stored size, for contrast


def test_upright_helper_turns_counter_clockwise():
    image = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(upright(image, 90), [[2, 5], [1, 4], [0, 3]])
    np.testing.assert_array_equal(upright(image, -90), [[3, 0], [4, 1], [5, 2]])
    np.testing.assert_array_equal(upright(image, 0), image)


@pytest.mark.parametrize("kind", ["vfr", "60fps", "10fps"])
def test_streaming_selection_matches_full_decode(clips, kind):
    rng = np.random.default_rng(1)
    if kind == "vfr":
        pts = np.cumsum(rng.uniform(0.01, 0.2, 30))
        pts = np.concatenate([[0.0], pts[pts < 2.9]])
        fps = 25
    else:
        fps = 60 if kind == "60fps" else 10
        pts = None
    count = len(pts) if pts is not None else 3 * fps
    frames = rng.integers(0, 255, (count, 32, 48, 3), dtype=np.uint8)
    path = write_test_video(clips / f"select-{kind}.mkv", frames, fps, pts=pts, **LOSSLESS)
    all_pts, all_images = decode_all(path)
    targets = target_times(3, 16)
    video = decode_video(path, fps=16)
    want = frame_for_targets(all_pts, targets)
    got = frame_for_targets(video.pts, targets)
    assert len(video.frames) <= len(set(want.tolist())) + 1  # only selected frames (+ the held last one)
    for w, g in zip(want, got):
        np.testing.assert_array_equal(video.frames[g], all_images[w])


def test_start_time_offset_is_time_zero(clips):
    frames = solid_frames([(255, 0, 0), (0, 0, 255)], 4, 32, 32)
    pts = 5.0 + np.arange(8) / 4  # the stream starts at 5 s
    path = write_test_video(clips / "offset.mkv", frames, 4, pts=pts, **LOSSLESS)
    video = decode_video(path, fps=4)
    np.testing.assert_allclose(video.pts, np.arange(8) / 4, atol=1e-3)


def test_mix_is_the_mean_of_the_channels(clips):
    # 5.1 tone with a different gain per channel: FFmpeg's own down-mix would weight
    # them unequally (and drop LFE); the spec asks for the plain mean.
    gains = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])[:, None]
    wave = gains * tone(1000, 1.0, 48000, amplitude=1.0)[None]
    path = write_test_video(clips / "surround.mkv", solid_frames([(0, 0, 0)], 4, 32, 32), 4,
                            audio=wave, sample_rate=48000, **LOSSLESS)
    mono = decode_audio(path)
    assert np.abs(mono[2000:14000]).max() == pytest.approx(gains.mean(), rel=0.02)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_resampled_to_16k(clips, rate, channels):
    path = simple_clip(clips / f"rate{rate}-{channels}.mkv", seconds=2, fps=2, sample_rate=rate,
                       channels=channels, **LOSSLESS)
    mono = decode_audio(path, 16000)
    # the writer pads the audio to whole 1024-sample codec frames
    assert 32000 - 64 <= len(mono) <= 32000 + 1024 * 16000 / rate + 64
    for second, frequency in enumerate([440.0, 1250.0]):
        chunk = mono[16000 * second + 1000:16000 * (second + 1) - 1000]
        peak = np.fft.rfftfreq(len(chunk), 1 / 16000)[np.argmax(np.abs(np.fft.rfft(chunk)))]
        assert peak == pytest.approx(frequency, abs=3)


def test_no_audio_stream_gives_none(clips):
    path = simple_clip(clips / "silent.mp4", seconds=1, fps=2, audio=False)
    assert decode_audio(path) is None


def test_fractional_rate_header(clips):
    path = simple_clip(clips / "ntsc.mp4", seconds=1, fps=Fraction(30000, 1001), audio=False)
    assert probe(path).fps == pytest.approx(29.97, abs=0.01)


def test_frames_are_converted_with_one_reformatter_per_video_and_the_pixels_of_a_fresh_one(tmp_path, monkeypatch):
    """The reused swscale context gives exactly what a new one per frame (``to_ndarray(width=, height=)``) gives,
    on a clip whose frame size changes halfway (the context must follow it)."""
    rng = np.random.default_rng(3)
    small = (rng.random((6, 120, 160, 3)) * 255).astype(np.uint8)
    path = write_test_video(tmp_path / "noise.mkv", small, fps=8, video_codec="ffv1", pix_fmt="yuv444p")
    built = []
    original = decode_module.VideoReformatter
    monkeypatch.setattr(decode_module, "VideoReformatter", lambda: built.append(1) or original())
    convert = frame_converter("ffmpeg-bilinear", 224)
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    bigger = av.VideoFrame.from_ndarray((rng.random((240, 320, 3)) * 255).astype(np.uint8), format="rgb24")
    for frame in [*frames, bigger.reformat(format="yuv420p"), frames[0]]:
        assert np.array_equal(convert(frame), frame.to_ndarray(width=224, height=224, format="rgb24"))
    assert len(built) == 1
