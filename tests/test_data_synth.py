"""The synthetic AVE generator: real decodable files whose labels, splits and boxes agree."""
from __future__ import annotations

import json
from collections import Counter

import av
import numpy as np
import pytest
from click.testing import CliRunner

from avepipe.commands.synth import synth
from avepipe.data.annotations import load_annotations
from avepipe.data.splits import load_official_splits
from avepipe.data.synth import OBJECT_SIZE, _plan_video, generate_dataset

VIDEOS, CLASSES, SECONDS, FPS = 8, 3, 10, 4


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("synth"), videos=VIDEOS, classes=CLASSES, seconds=SECONDS,
                            seed=5, size=(96, 64), fps=FPS, progress=False)


@pytest.fixture(scope="module")
def scenes(dataset):
    return json.loads(dataset.scenes_path.read_text())


def test_files_decode_as_h264_aac(dataset):
    assert sorted(dataset.videos) == [f"synth{i:05d}" for i in range(VIDEOS)]
    for path in dataset.videos.values():
        with av.open(str(path)) as container:
            video, audio = container.streams.video[0], container.streams.audio[0]
            assert video.codec_context.name == "h264" and audio.codec_context.name == "aac"
            assert (video.codec_context.width, video.codec_context.height) == (96, 64)
            assert video.average_rate == FPS and audio.codec_context.sample_rate == 16000
            assert container.duration / 1e6 == pytest.approx(SECONDS, abs=0.15)
            assert sum(1 for _ in container.decode(video=0)) == SECONDS * FPS


def test_annotations_scenes_and_splits_agree(dataset, scenes):
    annotations = load_annotations(dataset.annotations_path, [c.name for c in dataset.classes])
    from_csv = load_annotations(dataset.csv_path, annotations.classes)
    assert annotations.video_ids == list(dataset.videos)
    for video_id, seconds in scenes["videos"].items():
        expected = [annotations.class_index[s["label"]] if s["label"] else annotations.background_index
                    for s in seconds]
        assert annotations.segment_labels(video_id, SECONDS).tolist() == expected
        assert from_csv.segment_labels(video_id, SECONDS).tolist() == expected
        for s in seconds:  # a label exactly where the class is both seen and heard
            pair = set(s["visible"]) & set(s["audible"])
            assert (s["label"] is not None) == bool(pair) and (s["case"] == "event") == bool(pair)
            assert s["distractor"] not in s["visible"] + s["audible"]
    splits = load_official_splits(dataset.root, annotations)
    assert splits == dataset.splits
    assert sorted(sum(splits.values(), [])) == sorted(dataset.videos)


def test_every_label_case_occurs(scenes):
    cases = Counter(s["case"] for seconds in scenes["videos"].values() for s in seconds)
    assert set(cases) == {"event", "none", "object_only", "sound_only", "mismatch"}


def test_background_only_videos_and_event_intervals():
    """Planning alone (no rendering): about 15% background-only videos, one whole-second interval otherwise."""
    background = 0
    for i in range(400):
        event_class, (start, end), plan = _plan_video(np.random.default_rng([1, i]), 4, 10, 0.15)
        labels = [p.label for p in plan]
        if event_class is None:
            background += 1
            assert labels == [None] * 10
        else:
            assert labels == [None] * start + [event_class] * (end - start) + [None] * (10 - end)
            assert 2 <= end - start <= 7
    assert 40 <= background <= 80


def test_boxes_hold_the_sounding_object(dataset, scenes):
    boxes = json.loads(dataset.boxes_path.read_text())
    rgb = {c.name: np.array(c.rgb) for c in dataset.classes}
    checked = 0
    for video_id, per_second in boxes.items():
        assert len(per_second) == SECONDS
        for t, (box, scene) in enumerate(zip(per_second, scenes["videos"][video_id])):
            assert (box is None) == (scene["label"] is None)
            if box is None or checked >= 6:
                continue
            x0, y0, x1, y1 = box
            assert 0 <= x0 < x1 <= 96 and 0 <= y0 < y1 <= 64
            # pixels of the object's colour (or its darker stripe) lie inside the box, and there are many
            frame = _frame(dataset.videos[video_id], t * FPS + FPS // 2).astype(int)
            colour = rgb[scene["label"]]
            near = (np.abs(frame - colour).max(-1) < 40) | (np.abs(frame - 0.7 * colour).max(-1) < 40)
            ys, xs = np.nonzero(near)
            assert len(xs) > 1.5 * (OBJECT_SIZE * 64) ** 2      # the smallest shape (ring) covers ~2.4 r^2
            inside = (xs >= x0 - 2) & (xs < x1 + 2) & (ys >= y0 - 2) & (ys < y1 + 2)
            assert inside.mean() > 0.97
            checked += 1
    assert checked == 6


def _frame(path, index):
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return frame.to_ndarray(format="rgb24")
    raise AssertionError("frame missing")


def test_event_audio_has_the_class_spectrum(dataset, scenes):
    """In an event second the decoded audio's energy sits at the class's centre frequency."""
    by_name = {c.name: c for c in dataset.classes}
    video_id, t, name = next((v, t, s["label"]) for v, seconds in scenes["videos"].items()
                             for t, s in enumerate(seconds) if s["label"] and s["distractor"] is None)
    with av.open(str(dataset.videos[video_id])) as container:
        audio = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)[0]
    spectrum = np.abs(np.fft.rfft(audio[t * 16000:(t + 1) * 16000])) ** 2  # bin k = k Hz
    def band(hz):
        return spectrum[int(hz / 1.25):int(hz * 1.25)].sum()
    own = band(by_name[name].centre_hz)
    assert all(own > 5 * band(c.centre_hz) for c in dataset.classes if c.name != name)


def test_same_seed_same_dataset(dataset, tmp_path):
    again = generate_dataset(tmp_path, videos=VIDEOS, classes=CLASSES, seconds=SECONDS, seed=5, size=(96, 64),
                             fps=FPS, progress=False)
    assert again.annotations_path.read_text() == dataset.annotations_path.read_text()
    assert again.scenes_path.read_text() == dataset.scenes_path.read_text()
    assert again.boxes_path.read_text() == dataset.boxes_path.read_text()
    other = generate_dataset(tmp_path / "other", videos=VIDEOS, classes=CLASSES, seconds=SECONDS, seed=6,
                             size=(96, 64), fps=FPS, progress=False)
    assert other.annotations_path.read_text() != dataset.annotations_path.read_text()


def test_cli(tmp_path):
    runner = CliRunner()
    out = tmp_path / "set"
    result = runner.invoke(synth, [str(out), "--videos", "3", "--classes", "2", "--seconds", "3", "--seed", "1",
                                   "--size", "64x48", "--fps", "2", "--sample-rate", "44100", "--channels", "2"])
    assert result.exit_code == 0, result.output
    assert "wrote 3 videos" in result.output
    for name in ("Annotations.txt", "annotations.csv", "boxes.json", "scenes.json",
                 "train_order.h5", "val_order.h5", "test_order.h5"):
        assert (out / name).is_file()
    with av.open(str(out / "videos" / "synth00000.mp4")) as container:
        audio = container.streams.audio[0].codec_context
        assert (audio.sample_rate, audio.channels) == (44100, 2)
    bad = runner.invoke(synth, [str(tmp_path / "bad"), "--classes", "11"])
    assert bad.exit_code == 2 and "error: --classes must be between 1 and 10" in bad.output
    assert runner.invoke(synth, [str(tmp_path / "bad"), "--size", "big"]).exit_code == 2
