"""`avepipe localize --html` in a real browser: headless Chromium opens the page from file://.

Videos are the demo's kind (the synthetic generator, a held-out test-split video
with an event) and one without an audio track; a transparent extractor and model
(tests/_localize_helpers) make localisation fast and its answer known.
"""
from __future__ import annotations

import json
import re
from dataclasses import replace

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from avepipe.cli import main
from avepipe.demo import CLASSES as DEMO_CLASSES, SECONDS, SEED, SOURCE_FPS, SPLIT, _first_test_event_video
from avepipe.localizer import Localizer
from avepipe.report_html import browser_problem, transcode_for_browser, write_report
from avepipe.data.annotations import load_ave_annotations
from avepipe.data.synth import generate_dataset
from avepipe.data.video_writer import tone, write_test_video
from avepipe.extract.provenance import ExtractorConfig
from avepipe.models.fnac import SoundSourceLocalizer
from tests._browser_helpers import PageUnderTest, launch_chromium, sync_playwright_or_fail
from tests._localize_helpers import (LoudnessEncoder, MadeUpNet, RedAndLoudNet, check_png, colour_encoder,
                                     red_and_loud_localizer, write_video)

EXTRACTOR = ExtractorConfig(fps=2)   # random backbones (the default weights): the page warns


class LoudNet(RedAndLoudNet):
    """Calls every loud second (audio RMS > 0.05) the first class; explanations as the red-and-loud net."""

    def __init__(self, classes: int):
        super().__init__()
        self.num_classes, self.background = classes - 1, classes - 1

    def forward(self, audio, visual):
        out = super().forward(audio, visual)
        logits = torch.full((*audio.shape[:2], self.num_classes + 1), -4.0)
        logits[..., 0] = torch.where(audio[..., 0] > 0.05, 4.0, -4.0)
        logits[..., -1] = 0.0
        return replace(out, logits=logits)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright_or_fail() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def demo_page(tmp_path_factory):
    """The demo's held-out kind of video, its truth, a sound-source model and explanations."""
    root = tmp_path_factory.mktemp("html-demo")
    fractions = tuple(float(f) for f in SPLIT.split(","))
    synth = generate_dataset(root / "synth", videos=8, classes=DEMO_CLASSES, seconds=SECONDS, fps=SOURCE_FPS,
                             seed=SEED, split_fractions=fractions, progress=False)
    held_out = _first_test_event_video(synth.root)
    names = [c.name for c in synth.classes] + ["background"]
    torch.manual_seed(0)
    localizer = Localizer(LoudNet(len(names)), colour_encoder(), LoudnessEncoder(), EXTRACTOR, names,
                          segments=10, device="cpu", source_model=SoundSourceLocalizer(dim=8))
    video = synth.videos[held_out]
    result = localizer.localize(video, explain=True)
    annotations = load_ave_annotations(synth.annotations_path, names[:-1])
    truth = [names[i] for i in annotations.segment_labels(held_out, len(result.segments))]
    page = root / "out" / "report.html"
    write_report(page, [(str(video), result)], names, truths={held_out: truth}, extractor=EXTRACTOR,
                 checkpoint=root / "run", source_checkpoint=root / "source")
    return page, result, truth


@pytest.fixture(scope="module")
def silent_page(tmp_path_factory):
    root = tmp_path_factory.mktemp("html-silent")
    video = write_video(root / "silent.mp4", [True, False, True, True], None, size=(96, 64))
    result = red_and_loud_localizer().localize(video)
    page = root / "silent.html"
    write_report(page, [(str(video), result)], ["beep", "background"], truths={}, extractor=EXTRACTOR,
                 checkpoint=root / "run")
    return page, result


def page_data(page) -> dict:
    text = page.read_text(encoding="utf-8")
    return json.loads(re.search(r'id="avepipe-data">(.*?)</script>', text, re.S).group(1))


def test_page_is_self_contained_and_embeds_the_results(demo_page):
    page, result, truth = demo_page
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), "the page must not load anything remote"
    assert "<link" not in text and "<script src" not in text and "default-src 'none'" in text
    data = page_data(page)
    entry = data["videos"][0]
    assert [data["classes"][i] for i in entry["labels"]] == result.labels
    assert [data["classes"][i] for i in entry["truth"]] == truth
    assert entry["src"] == f"../synth/videos/{result.video}.mp4"   # relative to the page, not absolute
    events = [t for t, s in enumerate(result.segments) if s.source_peak is not None]
    assert events and [t for t, m in enumerate(entry["source_maps"]) if m is not None] == events
    explained = entry["explain"]
    assert len(explained["matrix"]["gamma_va"]) == len(result.segments)
    assert explained["maps"]["attention"]["side"] == [7, 7] and len(explained["maps"]["attention"]["maps"][0]) == 49
    assert data["provenance"]["random_backbones"] is True


def test_script_text_cannot_close_the_data_block(tmp_path):
    result = red_and_loud_localizer().localize(write_video(tmp_path / "a.mp4", [True], [True]))
    result.notes.append("</script><script>alert(1)</script>")
    write_report(tmp_path / "p.html", [(str(tmp_path / "a.mp4"), result)], ["beep", "background"], truths={},
                 extractor=EXTRACTOR, checkpoint=tmp_path)
    assert page_data(tmp_path / "p.html")["videos"][0]["notes"][-1] == result.notes[-1]


def test_timeline_seek_highlight_and_heatmap_in_chromium(browser, demo_page, tmp_path):
    page, result, truth = demo_page
    view = PageUnderTest(browser, page)
    view.wait_for_video()
    assert view.cells() == list(enumerate(result.labels))
    assert view.cells("truth") == list(enumerate(truth))
    events = [t for t, s in enumerate(result.segments) if s.source_peak is not None]
    quiet = [t for t, s in enumerate(result.segments) if s.source_peak is None]
    assert events and quiet, result.labels

    view.click_cell(events[-1])
    view.wait_until("t => Math.abs(video.currentTime - t) < 0.05", events[-1])
    assert view.current_second() == events[-1]
    overlay = view.overlay_pixels()
    assert view.js("overlay.dataset.drawn") == "source"
    assert (overlay[..., 3] > 0).mean() > 0.9 and overlay[..., :3].std() > 5   # a heatmap, not a flat tint
    peak_x, peak_y = result.segments[events[-1]].source_peak
    x = round(peak_x / result.frame_size[0] * overlay.shape[1])
    y = round(peak_y / result.frame_size[1] * overlay.shape[0])
    assert (overlay[y - 1:y + 2, x - 1:x + 2, :3].min(axis=-1) > 200).sum() >= 6   # the white cross on the peak

    view.click_cell(quiet[0])
    view.wait_until("t => Math.abs(video.currentTime - t) < 0.05", quiet[0])
    assert view.js("overlay.dataset.drawn") == "none" and view.overlay_pixels()[..., 3].max() == 0
    view.page.click("#modes button[data-mode='explain:attention']")
    assert view.js("overlay.dataset.drawn") == "explain:attention"

    view.page.hover(f".cell[data-kind=predicted][data-second='{events[0]}']")
    tip = view.js("document.getElementById('tip').textContent")
    assert result.labels[events[0]] in tip and f"{100 * result.segments[events[0]].confidence:.1f}%" in tip

    view.js("video.muted = true; video.currentTime = 0; video.play()")
    view.wait_until("video.currentTime > 1.3")
    view.js("video.pause()")
    assert view.current_second() == int(view.js("video.currentTime")) >= 1

    first_event = result.intervals[0]
    view.page.click("#events li >> nth=0")
    view.wait_until("t => Math.abs(video.currentTime - t) < 0.05", first_event.start)
    assert view.js("document.querySelectorAll('#chart polygon').length") >= 2
    assert view.js("document.querySelector('#partners').textContent").startswith(f"Second {int(first_event.start)}:")
    assert view.errors == []
    pixels = check_png(view.screenshot(tmp_path / "page.png"), min_size=(1200, 800))
    event_colour = view.js("getComputedStyle(document.querySelector('.cell[data-second=\"%d\"]')).backgroundColor"
                           % events[0])
    rgb = [int(v) for v in re.findall(r"\d+", event_colour)[:3]]
    assert (np.abs(pixels - rgb).sum(axis=-1) < 6).sum() > 500, "the event cells are not on the screenshot"
    view.close()


def test_video_without_audio_in_chromium(browser, silent_page):
    page, result = silent_page
    view = PageUnderTest(browser, page)
    view.wait_for_video()
    assert view.cells() == [(t, "background") for t in range(4)]
    assert view.js("document.querySelector('#chart text').textContent") == "no audio: every second is background"
    assert "no audio stream" in view.js("document.getElementById('notes').textContent")
    hidden = "id => getComputedStyle(document.getElementById(id)).display === 'none'"
    assert view.js(hidden, "modes") and view.js(hidden, "truth-name")   # no maps, no truth: neither is shown
    view.click_cell(2)
    view.wait_until("Math.abs(video.currentTime - 2) < 0.05")
    assert view.current_second() == 2
    assert view.js("document.getElementById('events').textContent") == "no events found"
    assert view.js("document.getElementById('warning').hidden") is False
    assert view.errors == []
    view.close()


def test_index_of_several_videos(browser, tmp_path):
    first = write_video(tmp_path / "v" / "first.mp4", [True, True, False], [True, True, True]) \
        if (tmp_path / "v").mkdir() is None else None
    second = write_video(tmp_path / "v" / "second.mp4", [False, True], [True, True])
    localizer = red_and_loud_localizer()
    done = [(str(p), localizer.localize(p)) for p in (first, second)]
    truth = {"first": ["beep", "background", "background"]}
    write_report(tmp_path / "index.html", done, ["beep", "background"], truths=truth, extractor=EXTRACTOR,
                 checkpoint=tmp_path, errors=[{"path": "broken.mp4", "reason": "not a media file"}])
    view = PageUnderTest(browser, tmp_path / "index.html")
    rows = view.js("[...document.querySelectorAll('#index tbody tr')].map(r => [...r.cells].map(c => c.textContent))")
    assert rows == [["first", "3 s", "1", "66.7%", "view \u2192"], ["second", "2 s", "1", "\u2014", "view \u2192"]]
    assert "skipped broken.mp4: not a media file" in view.js("document.getElementById('failed').textContent")
    view.page.click("#index tbody tr:nth-child(2) a >> nth=0")
    view.wait_until("document.getElementById('title').textContent.startsWith('second')")
    assert view.cells() == [(0, "background"), (1, "beep")]
    assert view.js("video.getAttribute('src')") == "v/second.mp4"
    assert view.errors == []
    view.close()


def test_transcode_makes_a_copy_chromium_plays(browser, tmp_path):
    frames = np.zeros((8, 48, 64, 3), np.uint8)
    frames[:, :, :32] = (220, 20, 20)
    source = write_test_video(tmp_path / "old.avi", frames, 4, audio=np.concatenate([tone(440, 1.0)] * 2),
                              video_codec="mpeg4", audio_codec="mp3")
    result = red_and_loud_localizer().localize(source)
    linked = write_report(tmp_path / "linked.html", [(str(source), result)], ["beep", "background"], truths={},
                          extractor=EXTRACTOR, checkpoint=tmp_path)
    assert linked == [f"{source}: .avi is not a container browsers play; the page may not play it "
                      "(video mode transcode writes an H.264/AAC copy)"]
    assert write_report(tmp_path / "page.html", [(str(source), result)], ["beep", "background"], truths={},
                        extractor=EXTRACTOR, checkpoint=tmp_path, video_mode="transcode") == []
    copy = tmp_path / "page_media" / "old.mp4"
    with av.open(str(copy)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.video[0].codec_context.format.name == "yuv420p"
        assert container.streams.audio[0].codec_context.name == "aac"
    view = PageUnderTest(browser, tmp_path / "page.html")
    view.wait_for_video()
    assert view.js("video.getAttribute('src')") == "page_media/old.mp4"
    with av.open(str(source)) as container:
        duration = container.duration / 1e6
    assert abs(view.js("video.duration") - duration) < 0.1   # the copy keeps the source's timing
    assert view.errors == []
    view.close()


def test_transcode_keeps_variable_frame_timing(tmp_path):
    frames = np.zeros((5, 47, 65, 3), np.uint8)   # odd size: libx264 writes 4:4:4, which browsers do not decode
    frames[:, :, :, 0] = np.arange(5)[:, None, None] * 50
    pts = [0.0, 0.1, 0.5, 1.7, 2.9]
    source = write_test_video(tmp_path / "vfr.mp4", frames, 8, pts=pts, audio=tone(440, 3.0))
    assert browser_problem(source) == "H.264 in yuv444p is not a pixel format browsers play"
    copy = transcode_for_browser(source, tmp_path / "copy.mp4")
    assert browser_problem(copy) is None
    with av.open(str(copy)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (64, 46)
        assert [float(f.pts * f.time_base) for f in container.decode(stream)] == pytest.approx(pts, abs=1e-3)


def test_a_missing_video_says_what_to_do(browser, tmp_path):
    video = write_video(tmp_path / "gone.mp4", [True], [True])
    result = red_and_loud_localizer().localize(video)
    write_report(tmp_path / "page.html", [(str(video), result)], ["beep", "background"], truths={},
                 extractor=EXTRACTOR, checkpoint=tmp_path)
    video.unlink()
    view = PageUnderTest(browser, tmp_path / "page.html")
    view.wait_until("getComputedStyle(document.getElementById('failed-video')).display === 'flex'")
    assert "--html-video transcode" in view.js("document.getElementById('failed-video').textContent")
    view.close()


def test_cli_writes_the_page_and_reads_the_checkpoint_from_the_environment(tmp_path, monkeypatch):
    video = write_video(tmp_path / "clip.mp4", [True, False], [True, True])
    seen = []

    def from_checkpoint(cls, path, **options):
        seen.append(path)
        return red_and_loud_localizer()

    monkeypatch.setattr(Localizer, "from_checkpoint", classmethod(from_checkpoint))
    monkeypatch.setenv("AVEPIPE_CHECKPOINT", str(tmp_path / "ckpt"))
    page = tmp_path / "out" / "page.html"
    result = CliRunner().invoke(main, ["localize", str(video), "--html", str(page), "--html-video", "copy"])
    assert result.exit_code == 0, result.output
    assert seen == [tmp_path / "ckpt"] and f"page: {page}" in result.output
    assert (tmp_path / "out" / "page_media" / "clip.mp4").read_bytes() == video.read_bytes()
    entry = page_data(page)["videos"][0]
    assert entry["src"] == "page_media/clip.mp4" and entry["labels"] == [0, 1]


def test_no_checkpoint_is_one_line_naming_both_ways_to_get_one(tmp_path, monkeypatch):
    monkeypatch.delenv("AVEPIPE_CHECKPOINT", raising=False)
    result = CliRunner().invoke(main, ["localize", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output == ("error: no checkpoint: give -c DIR or set AVEPIPE_CHECKPOINT; get one by training "
                             "(`avepipe train`) or by importing the authors' released weights "
                             "(`avepipe import-checkpoint`)\n")


def test_any_explained_name_gets_its_figure_and_overlay_in_chromium(browser, tmp_path):
    """Names the page has never heard of: a matrix, a map over the frame and per-second values."""
    video = write_video(tmp_path / "clip.mp4", [False] * 12, [True] * 12, size=(96, 64))
    localizer = Localizer(MadeUpNet(), colour_encoder(), LoudnessEncoder(), EXTRACTOR, ["beep", "background"],
                          segments=10, device="cpu")
    result = localizer.localize(video, explain=True)
    write_report(tmp_path / "p.html", [(str(video), result)], ["beep", "background"], truths={}, extractor=EXTRACTOR,
                 checkpoint=tmp_path)
    view = PageUnderTest(browser, tmp_path / "p.html")
    view.wait_for_video()
    captions = "[...document.querySelectorAll('#explain figcaption')].map(f => f.textContent)"
    assert view.js(captions) == ["made_up_relation", "made_up_map"]
    view.click_cell(3)
    view.wait_until("Math.abs(video.currentTime - 3) < 0.05")
    # second 3 is at positions 3 and 1 of the two windows: relation row 3 is largest at second 0 (3 - 0 = 3)
    assert view.js("document.getElementById('partners').textContent") == (
        "Second 3: made_up_relation row 3 is largest at 0 s (3.00), 1 s (2.00), 2 s (1.00); made_up_gate: 2.00.")
    view.page.click("#modes button[data-mode='explain:made_up_map']")
    assert view.js("overlay.dataset.drawn") == "explain:made_up_map"
    assert view.errors == []
    view.close()
