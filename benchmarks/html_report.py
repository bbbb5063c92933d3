"""Size and time to first render of the `localize --html` page, for a 600-second video against a 10-second one.

The page is built with every panel filled, the worst case for its size: the 28 AVE
classes + background with per-second probabilities, PSP connection matrices and
attention maps (--explain) and sound-source maps (--source-checkpoint). The results
are generated (seeded), not computed by a model: the page's cost depends only on
their shapes. Both videos are real H.264/AAC files beside the page.

Headless system Chromium (Playwright) opens the two pages from file:// in turn, ``--runs``
times each (after one discarded warm-up round), times from navigation start: first contentful
paint (the header), the end of the page's script (timeline, chart, overlay built),
and the first frame painted after it (first full render); then the cost of a seek
(a cell clicked -> highlight, overlay and explanations redrawn), median of 20 seeks.

    python benchmarks/html_report.py [--long-seconds 600] [--runs 5]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cpu_info() -> dict:
    fields = {}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return {"cpu": fields.get("model name", platform.processor()), "flags": fields.get("flags", "")}


def fake_result(seconds: int, classes: list[str], seed: int):
    """A LocalizationResult shaped like `localize --explain --source-checkpoint` output for a ``seconds`` video."""
    from avepipe.results import Interval, LocalizationResult, SegmentPrediction
    from avepipe.windows import average_window_matrices

    rng = np.random.default_rng(seed)
    probabilities = rng.dirichlet(np.full(len(classes), 0.3), size=seconds)
    labels = probabilities.argmax(axis=1)
    background = len(classes) - 1
    segments = [SegmentPrediction(t, classes[labels[t]], float(probabilities[t, labels[t]]),
                                  dict(zip(classes, map(float, probabilities[t]))),
                                  None if labels[t] == background else (80.0, 60.0))
                for t in range(seconds)]
    intervals, start = [], 0
    for t in range(1, seconds + 1):
        if t == seconds or labels[t] != labels[start]:
            if labels[start] != background:
                intervals.append(Interval(float(start), float(t), classes[labels[start]], 0.5))
            start = t
    windows = [(s, rng.dirichlet(np.ones(10), size=10)) for s in range(0, max(1, seconds - 9), 5)]
    gamma = average_window_matrices(windows, seconds) if seconds >= 10 else rng.dirichlet(np.ones(seconds), seconds)
    result = LocalizationResult(video=f"clip{seconds}", duration=float(seconds), has_audio=True, segments=segments,
                                intervals=intervals,
                                explain={"attention": rng.dirichlet(np.ones(49), size=seconds).reshape(seconds, 7, 7),
                                         "gamma_va": gamma, "gamma_av": gamma.T.copy()})
    result.source_maps = rng.random((seconds, 7, 7)).astype(np.float32)
    result.frame_size = (160, 120)
    return result


def write_page(folder: Path, seconds: int, classes: list[str]) -> tuple[Path, float]:
    from avepipe.data.video_writer import tone, write_test_video
    from avepipe.extract.provenance import ExtractorConfig
    from avepipe.report_html import write_report

    frames = (np.full((120, 160, 3), 40 + (t * 37) % 200, np.uint8) for t in range(seconds))
    video = write_test_video(folder / f"clip{seconds}.mp4", frames, 1,
                             audio=np.concatenate([tone(300 + 10 * (t % 30), 1.0) for t in range(seconds)]))
    result = fake_result(seconds, classes, seed=seconds)
    truth = [classes[-1]] * seconds
    page = folder / f"page{seconds}.html"
    started = time.perf_counter()
    write_report(page, [(str(video), result)], classes, truths={result.video: truth}, extractor=ExtractorConfig(),
                 checkpoint=folder / "run", source_checkpoint=folder / "source")
    return page, time.perf_counter() - started


def load_once(browser, page: Path) -> dict:
    """One load of ``page`` in a new tab: paint and script marks from navigation start, and a seek's cost."""
    tab = browser.new_page(viewport={"width": 1280, "height": 900})
    tab.goto(page.as_uri(), wait_until="commit")
    while not tab.evaluate("document.documentElement.dataset.rendered && "
                           "performance.getEntriesByName('first-contentful-paint').length"):
        time.sleep(0.02)
    timing = tab.evaluate("""() => ({
        first_contentful_paint_ms: performance.getEntriesByName('first-contentful-paint')[0].startTime,
        script_done_ms: +document.documentElement.dataset.ready,
        first_full_render_ms: +document.documentElement.dataset.rendered,
        seek_ms: (() => { const T = state.entry.labels.length, times = [];
            for (let i = 0; i < 20; i++) {
                const t0 = performance.now(); seek((i * 7919) % T); times.push(performance.now() - t0); }
            return times.sort((a, b) => a - b)[10]; })() })""")
    tab.close()
    return timing


def render_times(browser, pages: dict[str, Path], runs: int) -> dict[str, dict]:
    """Medians over ``runs`` loads of each page, interleaved so that both see the same machine load."""
    samples = {name: [] for name in pages}
    for run in range(runs + 1):
        for name, page in pages.items():
            timing = load_once(browser, page)
            if run:   # run 0 warms the browser up: its first pages pay for its own start
                samples[name].append(timing)
    return {name: {key: round(statistics.median(s[key] for s in values), 1) for key in values[0]}
            for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--long-seconds", type=int, default=600)
    parser.add_argument("--runs", type=int, default=9, help="page loads per video; medians are reported")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from avepipe.data.ave_metadata import AVE_ANNOTATIONS
    from avepipe.data.annotations import load_ave_annotations
    from benchmarks._chromium import chromium_path

    import avepipe.plots  # noqa: F401  (imported before timing: the page's colours come from it)

    classes = list(load_ave_annotations(AVE_ANNOTATIONS).classes)   # ends with background
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path())
        out = {"benchmark": "html_report", **cpu_info(), "browser": f"Chromium {browser.version}",
               "load_average_1min": round(os.getloadavg()[0], 1), "classes": len(classes)}
        pages = {}
        for name, seconds in (("short", 10), ("long", args.long_seconds)):
            pages[name], write_s = write_page(Path(tmp), seconds, classes)
            out[name] = {"seconds": seconds, "html_bytes": pages[name].stat().st_size, "write_s": round(write_s, 3)}
        for name, timing in render_times(browser, pages, args.runs).items():
            out[name].update(timing)
        browser.close()
    out["size_ratio_long_vs_short"] = round(out["long"]["html_bytes"] / out["short"]["html_bytes"], 1)
    out["render_ratio_long_vs_short"] = round(out["long"]["first_full_render_ms"]
                                              / out["short"]["first_full_render_ms"], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
