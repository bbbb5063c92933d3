"""`avepipe localize` end to end: a real checkpoint with random backbones, a folder with a bad file."""
from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from avepipe.cli import main
from avepipe.errors import UserError
from avepipe.localize_schema import SCHEMA
from avepipe.extract.backbones import build_encoders, build_encoders_for
from avepipe.extract.provenance import ExtractorConfig
from avepipe.models import build_model
from avepipe.models.checkpoint import save_checkpoint
from tests._localize_helpers import check_png, schema_errors, write_video


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("localize-cli")
    videos = root / "videos"
    videos.mkdir()
    write_video(videos / "first clip.mp4", [True, False, True], [True, True, False])
    write_video(videos / "silent.mp4", [True, True], None)
    (videos / "notes.mp4").write_text("this is not a video\n")
    # one fps keeps the random VGG-19 cheap: one frame per second
    _, _, extractor = build_encoders(random_seed=3, fps=1, device="cpu")
    checkpoint = save_checkpoint(root / "ckpt", build_model("psp", "fully", num_classes=2),
                                 ["beep", "boop", "background"], extractor)
    annotations = root / "labels.csv"
    annotations.write_text('video_id,start,end,label\nfirst clip,0,1,beep\nsilent,,,\n')
    return root, videos, checkpoint, annotations


@pytest.fixture(scope="module")
def run(setup):
    root, videos, checkpoint, annotations = setup
    out = root / "out"
    out.mkdir()
    result = CliRunner().invoke(main, [
        "localize", str(videos), "-c", str(checkpoint), "--json", str(out / "r.json"), "--csv", str(out / "r.csv"),
        "--plot", str(out / "timeline.png"), "--explain", str(out / "explain"), "--annotations", str(annotations),
        "--device", "cpu"])
    return result, out


def test_bad_file_is_skipped_with_a_reason_and_exit_2(run):
    result, out = run
    assert result.exit_code == 2, result.output
    assert "notes.mp4: not a media file" in result.output
    assert "Traceback" not in result.output
    document = json.loads((out / "r.json").read_text())
    assert [e["path"].endswith("notes.mp4") for e in document["errors"]] == [True]
    assert sorted(v["video"] for v in document["videos"]) == ["first clip", "silent"]


def test_table_is_printed(run):
    result, _ = run
    assert "random backbones" in result.output
    assert "first clip  (3.0 s)" in result.output
    assert "silent  (2.0 s, no audio)" in result.output
    assert "accuracy vs annotations" in result.output
    for line in ("     0.0-1.0  ", "     2.0-3.0  "):
        assert line in result.output


def test_json_matches_schema_and_csv_has_the_same_rows(run):
    _, out = run
    document = json.loads((out / "r.json").read_text())
    assert schema_errors(document, SCHEMA) == []
    assert document["classes"] == ["beep", "boop", "background"]
    assert document["extractor"]["visual_weights"] == "random:3" and document["extractor"]["fps"] == 1
    by_video = {v["video"]: v for v in document["videos"]}
    assert [s["second"] for s in by_video["first clip"]["segments"]] == [0, 1, 2]
    assert by_video["silent"]["has_audio"] is False
    assert {s["label"] for s in by_video["silent"]["segments"]} == {"background"}
    explained = by_video["first clip"]["explain"]     # --explain puts what PSP explains in the JSON too
    assert sorted(explained) == ["attention", "gamma_av", "gamma_va"]
    assert len(explained["gamma_va"]) == 3 and len(explained["attention"][0]) == 7

    with (out / "r.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    segments = [(r["video"], int(r["second"]), r["label"]) for r in rows if r["kind"] == "segment"]
    assert segments == [(v["video"], s["second"], s["label"]) for v in document["videos"] for s in v["segments"]]
    intervals = [(r["video"], float(r["start"]), float(r["end"])) for r in rows if r["kind"] == "interval"]
    assert intervals == [(v["video"], i["start"], i["end"]) for v in document["videos"] for i in v["intervals"]]


def test_pictures_are_real_pngs(run):
    _, out = run
    for name in ("timeline_first clip.png", "timeline_silent.png", "explain/first clip_gamma_va.png",
                 "explain/first clip_gamma_av.png", "explain/first clip_attention.png", "explain/silent_attention.png"):
        check_png(out / name)


def test_missing_checkpoint_is_one_line_error(setup, tmp_path):
    _, videos, _, _ = setup
    result = CliRunner().invoke(main, ["localize", str(videos), "-c", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and "config.json: not found" in result.output
    assert "Traceback" not in result.output


def test_weights_file_messages_name_the_option_on_the_command_line_only(setup, tmp_path):
    """The library says which argument gave the file; the command says which option."""
    _, videos, _, _ = setup
    recorded = ExtractorConfig(visual_weights="torchvision:IMAGENET1K_V1", audio_weights="random:1", fps=1)
    checkpoint = save_checkpoint(tmp_path / "pretrained", build_model("psp", "fully", num_classes=2),
                                 ["beep", "boop", "background"], recorded)
    missing = tmp_path / "nope.pth"
    with pytest.raises(UserError) as caught:
        build_encoders_for(recorded, vgg_weights=str(missing), device="cpu")
    assert str(caught.value).endswith("file not found (given by vgg_weights)")
    result = CliRunner().invoke(main, ["localize", str(videos / "first clip.mp4"), "-c", str(checkpoint),
                                       "--vgg-weights", str(missing), "--device", "cpu"])
    assert result.exit_code == 2
    assert result.output == (f"error: {missing}: VGG-19 ImageNet weights (torchvision IMAGENET1K_V1) file not found "
                             "(given by --vgg-weights)\n")
