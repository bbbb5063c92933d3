"""The outputs of ``avepipe localize``, one small writer each, chosen from the options.

Every writer sees each localised video as it is made (``add``) and the end of the run
(``close``); the loop in ``localize_videos`` knows none of them by name. Writers that write
one file for the whole run (JSON, CSV, the page) keep what they need of each video; the
pictures are written at once, so no video's frames outlive its turn.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from avepipe.extract.provenance import ExtractorConfig
from avepipe.localize_options import LocalizeOptions
from avepipe.localize_schema import SCHEMA_ID
from avepipe.plots import plot_explain, plot_timeline
from avepipe.report_html import write_report
from avepipe.results import LocalizationResult
from avepipe.source.heatmaps import to_frame_aspect, write_event_heatmaps


@dataclass
class LocalizedVideo:
    """One video's result, with the path it was read from and its annotated labels (if any)."""

    path: str
    result: LocalizationResult
    truth: list[str] | None = None


@dataclass
class LocalizeRun:
    """What every writer may need of the run: the same for every video."""

    options: LocalizeOptions
    class_names: list[str]
    extractor: ExtractorConfig
    many: bool                                  # several videos: picture names get the video id
    echo: Callable[..., None]                   # echo(text, err=False)
    errors: list[dict] = field(default_factory=list)   # {"path", "reason"} of every file that failed


class Writer:
    """One output of the run."""

    def __init__(self, run: LocalizeRun):
        self.run = run

    def add(self, video: LocalizedVideo) -> None:
        """Called once per localised video, in order."""

    def close(self) -> None:
        """Called once after the last video (also when every video failed)."""


def format_table(result: LocalizationResult) -> str:
    """The per-second table, then the merged event intervals, as aligned text."""
    lines = [f"{result.video}  ({result.duration:.1f} s{'' if result.has_audio else ', no audio'})"]
    lines += [f"  note: {note}" for note in result.notes]
    lines.append(f"  {'time':>13}  {'label':<32} confidence")
    for segment in result.segments:
        item = segment.to_dict(result.duration)
        peak = "" if segment.source_peak is None else "  sound at ({:.0f}, {:.0f})".format(*segment.source_peak)
        lines.append(f"  {item['start']:6.1f}-{item['end']:<6.1f}  {segment.label:<32} {segment.confidence:.3f}{peak}")
    if result.intervals:
        lines.append(f"  events: {'start':>6} {'end':>6}  {'label':<32} mean confidence")
        lines += [f"          {i.start:6.1f} {i.end:6.1f}  {i.label:<32} {i.confidence:.3f}"
                  for i in result.intervals]
    else:
        lines.append("  events: none")
    return "\n".join(lines)


class TableWriter(Writer):
    """The text report: a table per video, the accuracy against annotations, the failed files."""

    def __init__(self, run: LocalizeRun):
        super().__init__(run)
        self.correct = self.total = 0

    def add(self, video: LocalizedVideo) -> None:
        text = format_table(video.result)
        if video.truth is not None:
            hits = sum(p == t for p, t in zip(video.result.labels, video.truth))
            self.correct, self.total = self.correct + hits, self.total + len(video.truth)
            text += f"\n  accuracy vs annotations: {hits}/{len(video.truth)} seconds"
        self.run.echo(text)

    def close(self) -> None:
        if self.total:
            self.run.echo(f"segment accuracy vs annotations: {self.correct / self.total:.1%} "
                          f"({self.correct}/{self.total} seconds)")
        if self.run.errors:
            self.run.echo(f"{len(self.run.errors)} file(s) failed:", err=True)
            for error in self.run.errors:
                self.run.echo(f"  {error['path']}: {error['reason']}", err=True)


class JsonWriter(Writer):
    """Every video's result in one JSON document (schema: ``avepipe.localize_schema``)."""

    def __init__(self, run: LocalizeRun):
        super().__init__(run)
        self.videos: list[dict] = []

    def add(self, video: LocalizedVideo) -> None:
        self.videos.append({"path": video.path, **video.result.to_dict()})

    def close(self) -> None:
        options = self.run.options
        document = {"schema": SCHEMA_ID, "checkpoint": str(options.checkpoint),
                    **({"source_checkpoint": str(options.source_checkpoint)} if options.source_checkpoint else {}),
                    "classes": self.run.class_names,
                    "extractor": json.loads(self.run.extractor.to_json()),
                    "videos": self.videos, "errors": self.run.errors}
        options.json_path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


class CsvWriter(Writer):
    """One row per second (kind=segment) and per merged event (kind=interval) of every video."""

    HEADER = ["video", "path", "kind", "second", "start", "end", "label", "confidence"]

    def __init__(self, run: LocalizeRun):
        super().__init__(run)
        self.rows: list[list] = []

    def add(self, video: LocalizedVideo) -> None:
        result = video.result
        for segment in result.segments:
            item = segment.to_dict(result.duration)
            self.rows.append([result.video, video.path, "segment", segment.second, item["start"], item["end"],
                              segment.label, f"{segment.confidence:.6f}"])
        for interval in result.intervals:
            self.rows.append([result.video, video.path, "interval", "", interval.start, interval.end,
                              interval.label, f"{interval.confidence:.6f}"])

    def close(self) -> None:
        with self.run.options.csv_path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(self.HEADER)
            writer.writerows(self.rows)


def output_path(base: Path, video_id: str, many: bool) -> Path:
    """``base`` for one video; ``base_<video>.png`` beside it for several."""
    return base.with_name(f"{base.stem}_{video_id}{base.suffix}") if many else base


class TimelineWriter(Writer):
    """Thumbnails above the predicted timeline (and the annotated one), a PNG per video."""

    def add(self, video: LocalizedVideo) -> None:
        path = output_path(self.run.options.plot_path, video.result.video, self.run.many)
        plot_timeline(video.result, path, self.run.class_names, video.truth)


class ExplainWriter(Writer):
    """One picture per name the network explains: ``<video>_<name>.png``."""

    def __init__(self, run: LocalizeRun):
        super().__init__(run)
        run.options.explain_dir.mkdir(parents=True, exist_ok=True)

    def add(self, video: LocalizedVideo) -> None:
        result = video.result
        for name in result.explain:
            plot_explain(result, name, self.run.options.explain_dir / f"{result.video}_{name}.png")


class HeatmapWriter(Writer):
    """The frame of each event second (or of every second) with its sound-source map overlaid."""

    def add(self, video: LocalizedVideo) -> None:
        result, every_second = video.result, self.run.options.heatmaps_for == "all"
        mapped = 0 if result.source_maps is None else len(result.source_maps)     # no audio: no maps
        chosen = [s for s in result.segments if s.source_peak is not None or (every_second and s.second < mapped)]
        if chosen:
            frames = {s.second: to_frame_aspect(result.thumbnails[s.second], result.frame_size) for s in chosen}
            write_event_heatmaps(self.run.options.heatmaps_dir, result.video, frames, result.source_maps,
                                 {s.second: s.label for s in chosen})


class HtmlWriter(Writer):
    """One self-contained page to watch every video's results (``report_html``)."""

    def __init__(self, run: LocalizeRun):
        super().__init__(run)
        self.done: list[tuple[str, LocalizationResult]] = []
        self.truths: dict[str, list[str]] = {}

    def add(self, video: LocalizedVideo) -> None:
        self.done.append((video.path, video.result))
        if video.truth is not None:
            self.truths[video.result.video] = video.truth

    def close(self) -> None:
        options = self.run.options
        notes = write_report(options.html_path, self.done, self.run.class_names, truths=self.truths,
                             extractor=self.run.extractor, checkpoint=options.checkpoint,
                             source_checkpoint=options.source_checkpoint, video_mode=options.html_video,
                             errors=self.run.errors)
        for note in notes:
            self.run.echo(f"note: {note}", err=True)
        self.run.echo(f"page: {options.html_path}")


# Option that asks for it -> writer; the table is always written, first.
WRITERS: dict[str, type[Writer]] = {
    "plot_path": TimelineWriter, "explain_dir": ExplainWriter, "heatmaps_dir": HeatmapWriter,
    "json_path": JsonWriter, "csv_path": CsvWriter, "html_path": HtmlWriter,
}


def get_writers(run: LocalizeRun) -> list[Writer]:
    """The writers the options ask for, in a fixed order: the table, pictures, then whole-run files."""
    return [TableWriter(run)] + [writer(run) for option, writer in WRITERS.items()
                                 if getattr(run.options, option) is not None]
