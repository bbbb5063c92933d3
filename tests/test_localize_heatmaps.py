"""`localize --source-checkpoint --heatmaps`: where the sound comes from in each event second."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from avepipe.cli import main
from avepipe.localize_schema import SCHEMA, SEGMENT
from avepipe.localizer import Localizer
from avepipe.source.heatmaps import to_frame_aspect
from avepipe.source.metrics import point_in_box
from avepipe.data.video_writer import tone, write_test_video
from avepipe.extract.backbones import build_encoders
from avepipe.extract.provenance import ExtractorConfig
from avepipe.models import build_model
from avepipe.models.checkpoint import save_checkpoint
from avepipe.models.fnac import SoundSourceLocalizer
from tests._localize_helpers import (CLASSES, LoudnessEncoder, RedAndLoudNet, check_png, colour_encoder, schema_errors,
                                     write_video)

WIDTH, HEIGHT = 64, 48
TOP_RIGHT = (40, 0, 64, 16)        # x0, y0, x1, y1 of the bright patch, pixels of the 64x48 frame
BOTTOM_LEFT = (0, 32, 24, 48)


def _patch_video(path, patches):
    """A red frame with a brighter red patch (or a grey frame for ``None``) per second, loud throughout."""
    frames = []
    for box in patches:
        frame = np.full((HEIGHT, WIDTH, 3), (90, 90, 90) if box is None else (150, 20, 20), np.uint8)
        if box is not None:
            frame[box[1]:box[3], box[0]:box[2]] = (250, 0, 0)
        frames += [frame] * 4
    audio = np.concatenate([tone(440, 1.0)] * len(patches))
    return write_test_video(path, np.stack(frames), 4, audio=audio)


def _redness_source_model() -> SoundSourceLocalizer:
    """Map = cosine of (R - G, 0.5) with (1, 0): highest where the cell is reddest, whatever the sound."""
    model = SoundSourceLocalizer(dim=2).eval()
    with torch.no_grad():
        model.visual_proj.weight.zero_()
        model.visual_proj.weight[0, 0], model.visual_proj.weight[0, 1] = 1.0, -1.0
        model.visual_proj.bias.copy_(torch.tensor([0.0, 0.5]))
        model.audio_proj.weight.zero_()
        model.audio_proj.bias.copy_(torch.tensor([1.0, 0.0]))
    return model


def test_peaks_of_event_seconds_are_on_the_sounding_patch_in_frame_pixels(tmp_path):
    path = _patch_video(tmp_path / "patch.mp4", [TOP_RIGHT, None, BOTTOM_LEFT])
    localizer = Localizer(RedAndLoudNet(), colour_encoder(), LoudnessEncoder(), ExtractorConfig(fps=2), CLASSES,
                          segments=10, device="cpu", source_model=_redness_source_model())
    result = localizer.localize(path, thumbnails=True, thumbnail_size=224)
    assert result.labels == ["beep", "background", "beep"]
    assert result.frame_size == (WIDTH, HEIGHT) and result.source_maps.shape == (3, 7, 7)
    peaks = [s.source_peak for s in result.segments]
    assert peaks[1] is None                                  # no event, no peak
    assert point_in_box(peaks[0], TOP_RIGHT) and point_in_box(peaks[2], BOTTOM_LEFT), peaks
    # peaks are 7x7 cell centres in pixels of the 64x48 frame, not of the 224x224 decode
    for x, y in (peaks[0], peaks[2]):
        assert min(abs(x - (c + 0.5) * WIDTH / 7) for c in range(7)) < 0.1
        assert min(abs(y - (r + 0.5) * HEIGHT / 7) for r in range(7)) < 0.1
    document = {"path": str(path), **result.to_dict()}
    assert document["segments"][0]["source_peak"] == list(peaks[0]) and "source_peak" not in document["segments"][1]
    # the frame under the heatmap has the video's aspect and the patch where it was
    frame = to_frame_aspect(result.thumbnails[0], result.frame_size)
    assert frame.shape == (168, 224, 3)
    assert frame[10:40, 180:220, 0].mean() > 230 and frame[10:40, 10:60, 0].mean() < 180


def test_schema_takes_a_peak_and_catches_a_bad_one():
    segment = {"second": 0, "start": 0.0, "end": 1.0, "label": "beep", "confidence": 0.9, "source_peak": [3.5, 10]}
    assert schema_errors(segment, SEGMENT) == []
    assert schema_errors({**segment, "source_peak": [-1.0, 2.0]}, SEGMENT) == ["$.source_peak[0]: -1.0 < 0"]
    assert schema_errors({**segment, "source_peak": [1.0]}, SEGMENT) == ["$.source_peak: fewer than 2 items"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("localize-heatmaps")
    videos = root / "videos"
    videos.mkdir()
    write_video(videos / "clip.mp4", [True, False, True], [True, True, True], size=(WIDTH, HEIGHT))
    write_video(videos / "silent.mp4", [True, True], None, size=(WIDTH, HEIGHT))
    _, _, extractor = build_encoders(random_seed=3, fps=1, device="cpu")   # one frame per second: cheap
    net = build_model("psp", "fully", num_classes=2)
    with torch.no_grad():   # L2 sees ReLU outputs (>= 0): "beep" wins every second that has audio
        net.L2.weight.copy_(torch.tensor([1.0, -1.0, -1.0])[:, None].expand_as(net.L2.weight))
    event = save_checkpoint(root / "event", net, ["beep", "boop", "background"], extractor)
    with torch.no_grad():   # now background wins every second: a model that finds no event
        net.L2.weight.copy_(torch.tensor([-1.0, -1.0, 1.0])[:, None].expand_as(net.L2.weight))
    save_checkpoint(root / "no-event", net, ["beep", "boop", "background"], extractor)
    source = save_checkpoint(root / "source", SoundSourceLocalizer(dim=8), [], extractor, task="source")
    other = save_checkpoint(root / "other", SoundSourceLocalizer(dim=8), [], replace(extractor, fps=2), task="source")
    return root, videos, event, source, other


def test_cli_writes_heatmaps_and_peaks(checkpoints):
    root, videos, event, source, _ = checkpoints
    out = root / "out"
    result = CliRunner().invoke(main, ["localize", str(videos), "-c", str(event), "--source-checkpoint", str(source),
                                       "--heatmaps", str(out / "heat"), "--json", str(out / "r.json"),
                                       "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "sound at (" in result.output
    document = json.loads((out / "r.json").read_text())
    assert schema_errors(document, SCHEMA) == []
    assert document["source_checkpoint"] == str(source)
    by_video = {v["video"]: v for v in document["videos"]}
    clip = by_video["clip"]["segments"]
    assert [s["label"] for s in clip] == ["beep"] * 3
    for segment in clip:
        x, y = segment["source_peak"]
        assert 0 < x < WIDTH and 0 < y < HEIGHT
    assert all("source_peak" not in s for s in by_video["silent"]["segments"])   # no audio: no event, no peak
    pictures = sorted(p.name for p in (out / "heat").iterdir())
    assert pictures == ["clip_0000.png", "clip_0001.png", "clip_0002.png"]
    pixels = check_png(out / "heat" / "clip_0000.png", min_size=(224, 168))
    assert pixels.shape[:2] == (168, 224)


def test_heatmaps_for_all_seconds_when_the_event_model_finds_none(checkpoints):
    root, videos, _, source, _ = checkpoints
    common = ["localize", str(videos), "-c", str(root / "no-event"), "--source-checkpoint", str(source),
              "--device", "cpu"]
    events_only = CliRunner().invoke(main, [*common, "--heatmaps", str(root / "none")])
    assert events_only.exit_code == 0, events_only.output
    assert not (root / "none").exists() or not list((root / "none").iterdir())
    every = CliRunner().invoke(main, [*common, "--heatmaps", str(root / "all"), "--heatmaps-for", "all"])
    assert every.exit_code == 0, every.output
    # the silent video has no audio, hence no map: only the clip's three seconds
    assert sorted(p.name for p in (root / "all").iterdir()) == ["clip_0000.png", "clip_0001.png", "clip_0002.png"]
    check_png(root / "all" / "clip_0001.png", min_size=(224, 168))


def test_cli_refuses_mixed_extractors_and_swapped_checkpoints(checkpoints):
    root, videos, event, source, other = checkpoints
    clip = str(videos / "clip.mp4")
    mixed = CliRunner().invoke(main, ["localize", clip, "-c", str(event), "--source-checkpoint", str(other)])
    assert mixed.exit_code == 2
    assert "different extractor than" in mixed.output and "(source vs event: fps: 2 vs 1)" in mixed.output
    swapped = CliRunner().invoke(main, ["localize", clip, "-c", str(source)])
    assert swapped.exit_code == 2
    assert "this is a sound-source checkpoint" in swapped.output and "give it as --source-checkpoint" in swapped.output
    alone = CliRunner().invoke(main, ["localize", clip, "-c", str(event), "--heatmaps", str(root / "h")])
    assert alone.exit_code == 2 and "--heatmaps needs --source-checkpoint" in alone.output
    assert "Traceback" not in mixed.output + swapped.output + alone.output
