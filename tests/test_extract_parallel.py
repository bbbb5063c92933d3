"""The pipelined extractor: worker processes, cross-video batches, streaming per-segment pooling."""
from __future__ import annotations

import dataclasses
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

import avepipe.extract.scheduler as scheduler
from avepipe.commands.extract import extract
from avepipe.data.video_writer import write_test_video
from avepipe.extract.batching import FrameBatcher
from avepipe.extract.decode import decode_audio_with_notes, decode_video
from avepipe.extract.features import VideoFeatures
from avepipe.extract.pipeline import extract_video
from avepipe.extract.sampling import frame_for_targets, target_times
from avepipe.extract.scheduler import extract_stream
from avepipe.extract.stream import VideoFailed, in_process_messages
from avepipe.extract.workers import DecoderPool
from tests._extract_helpers import random_encoders, simple_clip

FPS = 3


@pytest.fixture(scope="module")
def encoders():
    visual, audio, config = random_encoders()
    return visual, audio, dataclasses.replace(config, fps=FPS)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("parallel")
    simple_clip(folder / "a.mp4", seconds=2, fps=5)             # fewer source frames than targets: repeats
    simple_clip(folder / "b.mkv", seconds=1.5, fps=7, audio=False)
    simple_clip(folder / "c.mp4", seconds=1, fps=2, size=(97, 61))
    (folder / "bad.mp4").write_text("not a video\n" * 30)
    return folder


def _reference(path: Path, visual, audio, config) -> tuple[np.ndarray, np.ndarray]:
    """The whole-video algorithm, independently: decode everything, sample, encode, average."""
    video = decode_video(path, fps=config.fps)
    segments = int(np.ceil(round(video.duration, 6)))
    chosen = frame_for_targets(video.pts, target_times(segments, config.fps))
    maps = visual.encode(video.frames)[chosen]
    visual_ref = maps.reshape(segments, config.fps, *maps.shape[1:]).mean(axis=1)
    waveform = decode_audio_with_notes(path, config.sample_rate, start=video.start)
    audio_ref = audio.encode(waveform.waveform if waveform else np.zeros(0, np.float32), segments)
    return visual_ref, audio_ref


def _run(messages, visual, audio, config, ids, batch_size=4):
    outcomes = {}
    for key, outcome in extract_stream(messages, FrameBatcher(visual, batch_size), audio, config, ids):
        assert key not in outcomes
        outcomes[ids[key]] = outcome
    return outcomes


def test_workers_match_in_process_and_reference_and_skip_bad_files(encoders, folder):
    visual, audio, config = encoders
    paths = sorted(folder.iterdir())
    keyed = list(enumerate(paths))
    ids = {key: path.stem for key, path in keyed}

    in_process = _run(in_process_messages(keyed, config), visual, audio, config, ids)
    with DecoderPool(2, config, queue_depth=3) as pool:
        parallel = _run(pool.messages(keyed), visual, audio, config, ids)

    assert set(parallel) == set(in_process) == {"a", "b", "c", "bad"}
    for outcomes in (in_process, parallel):
        assert isinstance(outcomes["bad"], VideoFailed)
        assert outcomes["bad"].reason.startswith("not a media file FFmpeg can read")
    for vid in "abc":
        got, here = parallel[vid], in_process[vid]
        assert isinstance(got, VideoFeatures) and got.video_id == vid
        np.testing.assert_allclose(got.visual, here.visual, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(got.audio, here.audio, rtol=1e-6, atol=1e-6)
        assert (got.duration, got.has_audio, got.notes) == (here.duration, here.has_audio, here.notes)
        visual_ref, audio_ref = _reference(folder / f"{vid}.{'mkv' if vid == 'b' else 'mp4'}", visual, audio, config)
        assert got.visual.shape == visual_ref.shape
        np.testing.assert_allclose(got.visual, visual_ref, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got.audio, audio_ref, rtol=1e-4, atol=1e-4)
    assert parallel["b"].has_audio is False


def test_rerun_over_finished_cache_decodes_nothing(encoders, tmp_path, monkeypatch):
    clips = tmp_path / "clips"
    clips.mkdir()
    simple_clip(clips / "only.mp4", seconds=1, fps=2)
    args = [str(clips), "-o", str(tmp_path / "c.h5"), "--fps", "1", "--random-backbones", "0",
            "--device", "cpu", "--workers", "0"]
    first = CliRunner().invoke(extract, args)
    assert first.exit_code == 0, first.output

    def forbidden(*args, **kwargs):
        raise AssertionError("decoding or decoder workers started on a finished cache")

    monkeypatch.setattr("avepipe.extract.stream.SelectedFrames", forbidden)
    monkeypatch.setattr("avepipe.extract.stream.decode_audio_with_notes", forbidden)
    monkeypatch.setattr("avepipe.extract.workers.DecoderPool", forbidden)
    for workers in ("0", "2"):
        again = CliRunner().invoke(extract, [*args[:-1], workers])
        assert again.exit_code == 0, again.output
        assert "extracted 0 video(s)" in again.output and "1 already there" in again.output


class _TinyVisual:
    """A cheap stand-in for VGG-19 with the same interface: [N, 224, 224, 3] uint8 -> [N, 7, 7, 3] maps."""

    device = torch.device("cpu")
    features = nn.AdaptiveAvgPool2d(7)
    batch_size = 16

    @staticmethod
    def preprocess(frames: torch.Tensor) -> torch.Tensor:
        return frames.permute(0, 3, 1, 2).float()


class _SilentAudio:
    def encode(self, waveform, segments):
        return np.zeros((segments, 128), np.float32)


def test_memory_is_bounded_by_batch_not_video_length(encoders, tmp_path, monkeypatch):
    """A 400 s video at 4 targets/s: 1600 distinct 224x224 frames (230 MB if held), each grey level new."""
    _, _, config = encoders
    config = dataclasses.replace(config, fps=4)
    seconds, rate = 400, 4
    levels = (np.arange(seconds * rate) * 7) % 251  # period 251 > dedup window: every frame is computed
    frames = (np.full((16, 16, 3), level, np.uint8) for level in levels)
    clip = write_test_video(tmp_path / "long.mp4", frames, rate, video_codec="mpeg4", options={"qscale": "1"})

    most_open = {"segments": 0, "frames": 0}
    original_add = scheduler.VideoAssembly._add

    def watched_add(self, frame_map, first, stop):
        original_add(self, frame_map, first, stop)
        most_open["segments"] = max(most_open["segments"], len(self.sums))
        most_open["frames"] = max(most_open["frames"], len(self.waiting))

    monkeypatch.setattr(scheduler.VideoAssembly, "_add", watched_add)
    tracemalloc.start()
    try:
        features = extract_video(clip, _TinyVisual(), _SilentAudio(), config)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert features.visual.shape == (seconds, 7, 7, 3)
    # Each second shows 4 frames of known grey levels: the mean map is their mean (within the YUV round trip; neighbours differ by 28).
    expected = levels.reshape(seconds, rate).mean(axis=1)
    np.testing.assert_allclose(features.visual.mean(axis=(1, 2, 3)), expected, atol=3)
    # Open state is bounded by one CNN batch plus one message of frames, whatever the length.
    batch = _TinyVisual.batch_size
    assert most_open["frames"] <= batch + 8
    assert most_open["segments"] <= (batch + 8) // config.fps + 2
    assert peak < 40e6, f"peak traced memory {peak / 1e6:.0f} MB: frames are being held"
