"""Raw videos in, their audio-visual events out: tables, JSON, CSV and pictures (``avepipe localize``)."""
from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable
from pathlib import Path

from avepipe.errors import UserError

THUMBNAIL_SIZE = 96   # timeline thumbnails (--plot)
HEATMAP_SIZE = 224    # frames under a sound-source heatmap: the longer side, at the frame's aspect


def _echo(message: str, err: bool = False) -> None:
    print(message, file=sys.stderr if err else sys.stdout)


def format_table(result) -> str:
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
        lines += [f"          {i.start:6.1f} {i.end:6.1f}  {i.label:<32} {i.mean_confidence:.3f}"
                  for i in result.intervals]
    else:
        lines.append("  events: none")
    return "\n".join(lines)


def write_csv(path: Path, rows: list[tuple[str, object]]) -> None:
    """One row per second (kind=segment) and per merged event (kind=interval) of every video."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video", "path", "kind", "second", "start", "end", "label", "confidence"])
        for video_path, result in rows:
            for segment in result.segments:
                item = segment.to_dict(result.duration)
                writer.writerow([result.video, video_path, "segment", segment.second, item["start"], item["end"],
                                 segment.label, f"{segment.confidence:.6f}"])
            for interval in result.intervals:
                writer.writerow([result.video, video_path, "interval", "", interval.start, interval.end,
                                 interval.label, f"{interval.mean_confidence:.6f}"])


def output_path(base: Path, video_id: str, many: bool) -> Path:
    """``base`` for one video; ``base_<video>.png`` beside it for several."""
    return base.with_name(f"{base.stem}_{video_id}{base.suffix}") if many else base


def list_videos(arguments) -> tuple[list[Path], list[dict]]:
    """Video files named directly or found in folders (as `avepipe extract` finds them), and missing paths."""
    from avepipe.extract.folder import VIDEO_EXTENSIONS, discover_videos

    found, errors = [], []
    for argument in map(Path, arguments):
        if argument.is_dir():
            found += discover_videos(argument, VIDEO_EXTENSIONS)
        elif argument.exists():
            found.append(argument)
        else:
            errors.append({"path": str(argument), "reason": "no such file or folder"})
    return found, errors


def write_heatmaps(out_dir: Path, result, every_second: bool = False) -> None:
    """The frame of each event second (``every_second``: of every second) at its own aspect with the
    sound-source heatmap overlaid."""
    from avepipe.source.heatmaps import to_frame_aspect, write_event_heatmaps

    mapped = 0 if result.source_maps is None else len(result.source_maps)     # no audio: no maps
    events = [s for s in result.segments if s.source_peak is not None or (every_second and s.second < mapped)]
    if events:
        frames = {s.second: to_frame_aspect(result.thumbnails[s.second], result.frame_size) for s in events}
        write_event_heatmaps(out_dir, result.video, frames, result.source_maps, {s.second: s.label for s in events})


def truth_labels(annotations, video_id: str, length: int) -> list[str] | None:
    if annotations is None or video_id not in annotations:
        return None
    return [annotations.classes[i] for i in annotations.segment_labels(video_id, length)]


def localize_videos(videos, checkpoint: Path, *, json_path: Path | None = None, csv_path: Path | None = None,
                    html_path: Path | None = None, html_video: str = "link",
                    plot_path: Path | None = None, explain_dir: Path | None = None,
                    source_checkpoint: Path | None = None, heatmaps_dir: Path | None = None,
                    heatmaps_for: str = "events", annotations_path: Path | None = None, device: str | None = None,
                    vgg_weights: Path | None = None, vggish_weights: Path | None = None,
                    echo: Callable[..., None] = _echo) -> bool:
    """Localise every video of ``videos`` (files or folders), printing a table per video through ``echo``
    and writing what is asked; True when every video succeeded (a bad file is reported and skipped)."""
    from tqdm import tqdm

    from avepipe.extract.folder import split_duplicate_ids
    from avepipe.extract.stream import failure_reason
    from avepipe.localize_schema import SCHEMA_ID
    from avepipe.localizer import Localizer
    from avepipe.plots import plot_attention, plot_connections, plot_timeline
    from avepipe.data.annotations import load_annotations

    if heatmaps_dir and not source_checkpoint:
        raise UserError("--heatmaps needs --source-checkpoint (a model from `avepipe source train`)")
    found, errors = list_videos(videos)
    unique, duplicates = split_duplicate_ids(found)
    errors += [{"path": str(path), "reason": reason} for path, reason in duplicates]
    paths = list(unique.values())
    if not paths and not errors:
        raise UserError(f"no video files in {', '.join(map(str, videos))}")
    localizer = Localizer.from_checkpoint(checkpoint, device=device, vgg_weights=vgg_weights,
                                          vggish_weights=vggish_weights, source_checkpoint=source_checkpoint)
    labels = (load_annotations(annotations_path, classes=localizer.class_names)
              if annotations_path else None)
    if explain_dir:
        explain_dir.mkdir(parents=True, exist_ok=True)
    if localizer.extractor.is_random:
        echo("note: this checkpoint's extractor uses random backbones: a smoke test, not real features")
    many = len(paths) > 1
    done, truths, correct, total = [], {}, 0, 0
    for path in tqdm(paths, desc="localize", unit="video", file=sys.stderr, disable=not many):
        try:
            result = localizer.localize(path, explain=explain_dir is not None,
                                        thumbnails=plot_path is not None or heatmaps_dir is not None,
                                        thumbnail_size=HEATMAP_SIZE if heatmaps_dir else THUMBNAIL_SIZE)
        except Exception as exc:  # one bad file must not stop the folder (as in `avepipe extract`)
            reason = failure_reason(exc)
            errors.append({"path": str(path), "reason": reason})
            tqdm.write(f"skipped {path}: {reason}", file=sys.stderr)
            continue
        done.append((str(path), result))
        truth = truth_labels(labels, result.video, len(result.segments))
        text = format_table(result)
        if truth is not None:
            truths[result.video] = truth
            hits = sum(p == t for p, t in zip(result.labels, truth))
            correct, total = correct + hits, total + len(truth)
            text += f"\n  accuracy vs annotations: {hits}/{len(truth)} seconds"
        tqdm.write(text, file=sys.stdout) if many else echo(text)
        if plot_path:
            plot_timeline(result, output_path(plot_path, result.video, many), localizer.class_names, truth)
        if explain_dir:
            if result.gamma_va is not None:
                plot_connections(result, explain_dir / f"{result.video}_connections.png")
            plot_attention(result, explain_dir / f"{result.video}_attention.png")
        if heatmaps_dir:
            write_heatmaps(heatmaps_dir, result, every_second=heatmaps_for == "all")
        result.thumbnails = None  # pictures are written; do not hold frames of every video
    if total:
        echo(f"segment accuracy vs annotations: {correct / total:.1%} ({correct}/{total} seconds)")
    if errors:
        echo(f"{len(errors)} file(s) failed:", err=True)
        for error in errors:
            echo(f"  {error['path']}: {error['reason']}", err=True)
    if json_path:
        document = {"schema": SCHEMA_ID, "checkpoint": str(checkpoint),
                    **({"source_checkpoint": str(source_checkpoint)} if source_checkpoint else {}),
                    "classes": localizer.class_names,
                    "extractor": json.loads(localizer.extractor.to_json()),
                    "videos": [{"path": p, **r.to_dict()} for p, r in done], "errors": errors}
        json_path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    if csv_path:
        write_csv(csv_path, done)
    if html_path:
        from avepipe.report_html import write_report

        for note in write_report(html_path, done, localizer.class_names, truths=truths, extractor=localizer.extractor,
                                 checkpoint=checkpoint, source_checkpoint=source_checkpoint, video_mode=html_video,
                                 errors=errors):
            echo(f"note: {note}", err=True)
        echo(f"page: {html_path}")
    return not errors
