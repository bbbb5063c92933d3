"""--preset ave against the original AVE recipe, re-implemented with the real FFmpeg reader, OpenCV and VGGish code.

The references live in benchmarks/_ave_reference.py (shared with benchmarks/preset_ave_fidelity.py) and import nothing of avepipe's
extraction. Clips are lossless with known content per frame and per 0.96 s.
"""
from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from avepipe.commands.extract import extract
from avepipe.data.cache import FeatureCache
from avepipe.extract.decode import reader_count
from avepipe.extract.backbones import _he_init, _seeded
from avepipe.extract.logmel import EXAMPLE_HOP, log_mel_examples
from avepipe.extract.sampling import ave_frame_indices, ave_segment_count
from avepipe.extract.vggish import VGGish
from benchmarks._ave_reference import (TONES_HZ, keras_vgg19, original_examples, original_frames, original_visual,
                                       reader_frames, write_clip)
from benchmarks._ave_extraction import AVE, mismatches, recipe_output
from benchmarks._backbones_helpers import random_keras_weights, write_keras_notop

FPS = [Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30)]
FLOAT32_ROUNDING = 2.0 ** -23  # relative: one unit in the last place of a float32


@pytest.mark.parametrize("fps", FPS, ids=lambda f: f"{float(f):.2f}fps")
def test_frames_and_audio_examples_are_the_original_recipes(tmp_path, fps):
    clip = write_clip(tmp_path / "clip.mkv", fps, 10)
    meta, decoded = reader_frames(clip)
    count = reader_count(clip)
    assert (count.duration, count.rate) == (meta["duration"], meta["fps"])  # what the FFmpeg reader reports
    assert len(decoded) == round(10 * fps)

    frames, waveform, end = recipe_output(clip)
    reference = original_frames(clip)
    assert end.segments == 10 and len(frames) == 160
    assert mismatches(frames, reference) == []  # every target: the same frame, resized to the same bytes
    ffmpeg_scaled, _, _ = recipe_output(clip, replace(AVE, frame_resize="ffmpeg-bilinear"))
    assert len(mismatches(ffmpeg_scaled, reference)) == 160  # the default resize differs on every frame
    if fps.denominator == 1001:  # PTS timing picks other frames where 29.97 fps is counted as 30
        pts_timed, _, _ = recipe_output(clip, replace(AVE, frame_sampling="pts", segments=10))
        assert len(mismatches(pts_timed, reference)) > 10

    expected = original_examples(clip, tmp_path)
    assert expected.shape == (10, 96, 64)
    bands = expected.mean(axis=1).argmax(axis=1)  # example t is 0.96 s window t: TONES_HZ[t % 5]
    assert len(set(bands[:5])) == 5 and list(bands[5:]) == list(bands[:5])
    ours = log_mel_examples(waveform, 10, EXAMPLE_HOP)
    np.testing.assert_allclose(ours, expected, rtol=FLOAT32_ROUNDING, atol=1e-9)
    per_second = log_mel_examples(waveform, 10)  # the default framing drifts 0.04 s per second
    assert np.abs(per_second[0] - expected[0]).max() < 1e-6 < 1.0 < np.abs(per_second[9] - expected[9]).max()


def test_a_25_second_video_is_three_blocks_as_the_original_would_see_them(tmp_path):
    fps = Fraction(25)
    whole = write_clip(tmp_path / "whole.mkv", fps, 25)
    blocks = [write_clip(tmp_path / f"block{b}.mkv", fps, seconds, first_frame=250 * b, first_sample=441000 * b)
              for b, seconds in enumerate([10, 10, 5])]

    frames, waveform, end = recipe_output(whole)
    assert end.segments == 25 and end.notes == []
    reference = original_frames(blocks[0]) + original_frames(blocks[1]) + original_frames(blocks[2], seconds=5)
    assert mismatches(frames, reference) == []

    expected = np.concatenate([original_examples(block, tmp_path) for block in blocks])
    assert expected.shape == (25, 96, 64)
    ours = np.concatenate([log_mel_examples(waveform[160000 * b:160000 * (b + 1)], count, EXAMPLE_HOP)
                           for b, count in enumerate([10, 10, 5])])
    np.testing.assert_allclose(ours, expected, rtol=FLOAT32_ROUNDING, atol=1e-9)


def test_indices_past_the_last_frame_hold_it_and_say_so(tmp_path):
    """A 9 s video track in a 10 s file: the header count asks for frames 225..248, which do not exist."""
    clip = write_clip(tmp_path / "short_video.mkv", Fraction(25), 10)
    short = write_clip(tmp_path / "short.mkv", Fraction(25), 9)
    _, decoded = reader_frames(short)
    frames, _, end = recipe_output(_with_audio_of(clip, short, tmp_path))
    assert end.segments == 10 and len(frames) == 160
    assert any("indices 225..248 are past the last decoded frame (224): it is held for 16 target(s)" in note
               for note in end.notes)
    assert len(decoded) == 225
    last = cv2.resize(decoded[-1], (224, 224))
    assert all(np.array_equal(frame, last) for frame in frames[144:])  # second 9 asks for frames 225..248
    assert not np.array_equal(frames[143], last)  # frame 223 exists


def _with_audio_of(audio_clip: Path, video_clip: Path, tmp_path: Path) -> Path:
    """``video_clip``'s video with ``audio_clip``'s (longer) audio, remuxed without re-encoding."""
    import av

    out = tmp_path / "muxed.mkv"
    with av.open(str(video_clip)) as vin, av.open(str(audio_clip)) as ain, av.open(str(out), "w") as dst:
        streams = {id(s): dst.add_stream_from_template(s) for s in (vin.streams.video[0], ain.streams.audio[0])}
        for source, stream in ((vin, vin.streams.video[0]), (ain, ain.streams.audio[0])):
            for packet in source.demux(stream):
                if packet.dts is not None:
                    packet.stream = streams[id(stream)]
                    dst.mux(packet)
    return out


def _seeded_vggish_file(path: Path) -> Path:
    torch.save(_seeded(VGGish, _he_init, 5).state_dict(), path)
    return path


def test_cli_equals_the_original_recipe_at_24_25_2997_30_fps(tmp_path):
    """`avepipe extract --preset ave` (decoder worker, Keras-layout file, VGGish file) vs the re-implemented recipe.

    Each clip shows one picture per 5 s (VGG-19 runs on 2 of its frames, not 160); that every target takes
    the right frame is checked frame by frame above. "Relative error" is max |ours - ref| / max |ref| per second.
    """
    folder = tmp_path / "videos"
    folder.mkdir()
    clips = {f"clip{float(fps):.2f}": write_clip(folder / f"clip{float(fps):.2f}.mkv", fps, 10, picture_seconds=5)
             for fps in FPS}
    notop = write_keras_notop(tmp_path / "notop.h5", random_keras_weights(seed=3))
    vggish_file = _seeded_vggish_file(tmp_path / "vggish.pth")
    cache = tmp_path / "ave.h5"
    result = CliRunner().invoke(extract, [str(folder), "-o", str(cache), "--preset", "ave", "--vgg-weights",
                                          str(notop), "--vggish-weights", str(vggish_file), "--device", "cpu",
                                          "--workers", "1"])
    assert result.exit_code == 0, result.output
    stored = FeatureCache(cache)
    assert (stored.config.frame_sampling, stored.config.frame_resize, stored.config.audio_framing) == (
        "ave-index", "opencv-linear", "ave-clip")

    pool5 = keras_vgg19(notop)
    vggish = _seeded(VGGish, _he_init, 5).eval()
    for video_id, clip in clips.items():
        features = stored.read(video_id)
        expected = original_visual(original_frames(clip), pool5)
        for second, (ours, ref) in enumerate(zip(features.visual.astype(np.float64), expected)):
            cosine = ours.ravel() @ ref.ravel() / (np.linalg.norm(ours) * np.linalg.norm(ref))
            assert cosine >= 0.9999, (video_id, second, cosine)
            assert np.abs(ours - ref).max() / np.abs(ref).max() <= 1e-3, (video_id, second)

        with torch.no_grad():
            embeddings = vggish(torch.from_numpy(original_examples(clip, tmp_path)).float()[:, None]).numpy()
        rounding = FLOAT32_ROUNDING * np.abs(embeddings).max()
        np.testing.assert_allclose(features.audio, embeddings, rtol=0, atol=rounding)
        centred_ours = features.audio - features.audio.mean(axis=0)
        centred_ref = embeddings - embeddings.mean(axis=0)
        np.testing.assert_allclose(centred_ours, centred_ref, rtol=0, atol=2 * rounding)
        assert np.abs(centred_ref).max() > 1e4 * rounding  # what is left after centring is signal, not rounding


def test_tones_change_every_096_seconds():
    """The clips' audio content, checked on its own: window w plays TONES_HZ[w % 5]."""
    from benchmarks._ave_reference import windowed_tones

    pcm = windowed_tones(44100 * 3)[0].astype(np.float64)
    for window in range(3):
        start = int(0.96 * window * 44100) + 100
        spectrum = np.abs(np.fft.rfft(pcm[start:start + 4096] * np.hanning(4096)))
        assert abs(spectrum.argmax() * 44100 / 4096 - TONES_HZ[window]) < 44100 / 4096


def test_segment_count_and_padding_blocks():
    """T is the duration rounded (a 10.01 s AVE clip is 10 seconds); a padded block has no frames of its own."""
    assert [ave_segment_count(d) for d in (10.01, 9.6, 10.5, 25.0, 0.3)] == [10, 10, 11, 25, 1]
    assert ave_segment_count(25.0, segments=10) == 10
    cropped = ave_frame_indices(25.0, 25.0, 10)  # the first block of a longer video: a whole 10 s clip
    assert list(cropped[-16:]) == [225 + int(i / 16 * 25) for i in range(16)]
    padded = ave_frame_indices(10.01, 25.0, 12)  # block 1 would be a 0.01 s clip: n = 0, every target at its start
    assert list(padded[:160]) == list(ave_frame_indices(10.01, 25.0, 10)) and set(padded[160:]) == {250}
