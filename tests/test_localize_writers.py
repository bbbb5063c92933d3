"""localize's writers, each on a video whose answer is known (red and loud = the event), generic explain
names, and that a video is decoded once per run."""
from __future__ import annotations

import csv
import json
import re

import av
import numpy as np
import pytest

from avepipe.extract.pipeline import extract_video
from avepipe.extract.provenance import ExtractorConfig
from avepipe.localize_options import LocalizeOptions
from avepipe.localize_schema import SCHEMA
from avepipe.localize_writers import (CsvWriter, ExplainWriter, HtmlWriter, JsonWriter, LocalizedVideo, LocalizeRun,
                                      TableWriter, TimelineWriter, get_writers)
from avepipe.localizer import Localizer
from avepipe.models.fnac import SoundSourceLocalizer
from avepipe.report_html import explain_entry
from tests._localize_helpers import (CLASSES, LoudnessEncoder, MadeUpNet, RedAndLoudNet, check_png, colour_encoder,
                                     red_and_loud_localizer, schema_errors, write_video)

EVENTS = [3, 4, 5]           # red and loud; second 1 is loud only, second 7 red only
TRUTH = ["beep" if t in (3, 4) else "background" for t in range(10)]   # the annotation misses second 5


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    root = tmp_path_factory.mktemp("writers")
    path = write_video(root / "clip.mp4", [t in (3, 4, 5, 7) for t in range(10)], [t in (1, 3, 4, 5) for t in range(10)])
    result = red_and_loud_localizer().localize(path, explain=True)
    return root, LocalizedVideo(str(path), result, TRUTH)


def _run(root, **outputs) -> tuple[LocalizeRun, list]:
    said = []
    options = LocalizeOptions(root / "ckpt", **outputs)
    run = LocalizeRun(options, CLASSES, ExtractorConfig(fps=2), many=False,
                      echo=lambda text, err=False: said.append((err, text)))
    return run, said


def test_table_prints_each_second_the_events_the_accuracy_and_the_failures(known):
    root, video = known
    run, said = _run(root)
    writer = TableWriter(run)
    writer.add(video)
    run.errors.append({"path": "bad.mp4", "reason": "not a media file"})
    writer.close()
    table = said[0][1].splitlines()
    rows = [line.split() for line in table if re.match(r"\s+\d+\.\d-\d+\.\d", line)]
    assert [row[1] for row in rows] == ["beep" if t in EVENTS else "background" for t in range(10)]
    assert "   3.0    6.0  beep" in said[0][1]
    assert table[-1] == "  accuracy vs annotations: 9/10 seconds"
    assert said[1:] == [(False, "segment accuracy vs annotations: 90.0% (9/10 seconds)"),
                        (True, "1 file(s) failed:"), (True, "  bad.mp4: not a media file")]


def test_json_and_csv_hold_the_known_seconds_and_interval(known):
    root, video = known
    run, _ = _run(root, json_path=root / "r.json", csv_path=root / "r.csv")
    for writer in (JsonWriter(run), CsvWriter(run)):
        writer.add(video)
        writer.close()
    document = json.loads((root / "r.json").read_text())
    assert schema_errors(document, SCHEMA) == []
    (entry,) = document["videos"]
    assert [s["second"] for s in entry["segments"] if s["label"] == "beep"] == EVENTS
    assert [(i["start"], i["end"], i["label"]) for i in entry["intervals"]] == [(3.0, 6.0, "beep")]
    assert sorted(entry["explain"]) == ["attention", "gamma_av", "gamma_va"]
    with (root / "r.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["second"]) for r in rows if r["kind"] == "segment" and r["label"] == "beep"] == EVENTS
    assert [(r["start"], r["end"], r["label"]) for r in rows if r["kind"] == "interval"] == [("3.0", "6.0", "beep")]
    assert {r["path"] for r in rows} == {video.path}


def test_pictures_and_page_are_written_where_the_options_say(known):
    root, video = known
    run, said = _run(root, plot_path=root / "t.png", explain_dir=root / "explain", html_path=root / "p.html")
    writers = get_writers(run)
    assert [type(w) for w in writers] == [TableWriter, TimelineWriter, ExplainWriter, HtmlWriter]
    for writer in writers:
        writer.add(video)
    for writer in writers:
        writer.close()
    check_png(root / "t.png")
    assert sorted(p.name for p in (root / "explain").iterdir()) == ["clip_attention.png", "clip_gamma_av.png",
                                                                   "clip_gamma_va.png"]
    for picture in (root / "explain").iterdir():
        check_png(picture)
    page = (root / "p.html").read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="avepipe-data">(.*?)</script>', page, re.S).group(1))
    assert [data["classes"][i] for i in data["videos"][0]["labels"]] == video.result.labels
    assert said[-1] == (False, f"page: {root / 'p.html'}")
    assert get_writers(_run(root)[0])[0].__class__ is TableWriter and len(get_writers(_run(root)[0])) == 1


def test_any_name_a_network_explains_is_averaged_written_and_drawn(tmp_path):
    path = write_video(tmp_path / "clip.mp4", [False] * 12, [False] * 12)
    localizer = Localizer(MadeUpNet(), colour_encoder(), LoudnessEncoder(), ExtractorConfig(fps=2), CLASSES,
                          segments=10, device="cpu")
    result = localizer.localize(path, explain=True)
    assert list(result.explain) == ["made_up_gate", "made_up_relation", "made_up_map"]
    # windows start at 0 and 2: second s is at position s in the first, s - 2 in the second
    seen = [[s - start for start in (0, 2) if 0 <= s - start < 10] for s in range(12)]
    expected = np.array([np.mean(p) for p in seen])
    np.testing.assert_allclose(result.explain["made_up_gate"], expected)
    np.testing.assert_allclose(result.explain["made_up_map"], np.broadcast_to(expected[:, None, None] + 1, (12, 4, 4)))
    relation = result.explain["made_up_relation"]
    together = np.array([[any(0 <= s - a < 10 and 0 <= u - a < 10 for a in (0, 2)) for u in range(12)]
                         for s in range(12)])
    np.testing.assert_array_equal(np.isnan(relation), ~together)
    rows, cols = np.nonzero(together)
    np.testing.assert_allclose(relation[rows, cols], rows - cols)       # the same difference in every window
    document = json.loads(json.dumps({"path": str(path), **result.to_dict()}))
    assert schema_errors(document, SCHEMA["properties"]["videos"]["items"]) == []
    assert document["explain"]["made_up_relation"][0][11] is None
    run, _ = _run(tmp_path, explain_dir=tmp_path / "explain")
    ExplainWriter(run).add(LocalizedVideo(str(path), result))
    for name in result.explain:
        check_png(tmp_path / "explain" / f"clip_{name}.png", min_size=(150, 100))
    page = explain_entry(result.explain)
    assert (list(page["values"]), list(page["matrix"]), list(page["maps"])) == (
        ["made_up_gate"], ["made_up_relation"], ["made_up_map"])
    assert page["maps"]["made_up_map"]["side"] == [4, 4] and len(page["maps"]["made_up_map"]["maps"]) == 12


def test_a_video_is_decoded_once_for_features_pictures_and_sound_source(tmp_path, monkeypatch):
    path = write_video(tmp_path / "clip.mp4", [t in (1, 2) for t in range(4)], [True] * 4, size=(64, 48))
    opened = []
    real_open = av.open
    monkeypatch.setattr(av, "open", lambda *args, **kwargs: opened.append(args[0]) or real_open(*args, **kwargs))
    extract_video(path, colour_encoder(), LoudnessEncoder(), ExtractorConfig(fps=2))
    by_extraction = len(opened)
    assert by_extraction >= 1
    opened.clear()
    localizer = Localizer(RedAndLoudNet(), colour_encoder(), LoudnessEncoder(), ExtractorConfig(fps=2), CLASSES,
                          segments=10, device="cpu", source_model=SoundSourceLocalizer(dim=8))
    result = localizer.localize(path, explain=True, thumbnails=True, thumbnail_size=224)
    assert len(opened) == by_extraction, opened                   # nothing opened it again for the pictures
    assert result.frame_size == (64, 48) and result.thumbnails.shape == (4, 224, 224, 3)
    assert result.thumbnails[1, ..., 0].mean() > 180 and abs(result.thumbnails[0].mean() - 90) < 15
