"""``avepipe localize --html``: one self-contained page to watch what localize found.

The page (template ``report_page.html``: inline CSS and JavaScript, no network) embeds
the results as JSON and plays the video in an HTML5 player: a timeline of one-second
cells, per-second probabilities, the merged events, the sound-source heatmap and what
the network explains of the playing second. The video itself is not embedded: the page
links it by a relative path, or a copy (``copy``) or an H.264/AAC re-encoding
(``transcode``, for containers browsers cannot play) is written beside the page.
"""
from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from urllib.parse import quote

import av
import numpy as np

from avepipe import __version__
from avepipe.errors import UserError
from avepipe.plots import label_colours
from avepipe.results import explain_kind

VIDEO_MODES = ("link", "copy", "transcode")
DATA_MARK = "__AVEPIPE_DATA__"
DIGITS = 4  # probabilities and maps: 4 decimals keep a 600-second page small and are far below what a colour shows
# What Chromium, Firefox and Safari all play: https://developer.mozilla.org/docs/Web/Media/Formats
BROWSER_CONTAINERS = {".mp4", ".m4v", ".webm", ".ogv"}
BROWSER_VIDEO_CODECS = {"h264", "vp8", "vp9", "av1", "theora"}
BROWSER_AUDIO_CODECS = {"aac", "mp3", "opus", "vorbis", "flac"}
BROWSER_PIXEL_FORMATS = {"yuv420p", "yuvj420p"}  # H.264 4:4:4 / 4:2:2 decode in no browser


def media_folder(html_path: Path) -> Path:
    """Where copies and transcodes go: ``<page stem>_media/`` beside the page."""
    return html_path.with_name(f"{html_path.stem}_media")


def browser_problem(video_path: Path) -> str | None:
    """Why a browser cannot play ``video_path`` (container or codec), or None when it can."""
    if video_path.suffix.lower() not in BROWSER_CONTAINERS:
        return f"{video_path.suffix or 'no extension'} is not a container browsers play"
    with av.open(str(video_path)) as container:
        for stream in container.streams.video[:1]:
            if stream.codec_context.name not in BROWSER_VIDEO_CODECS:
                return f"{stream.codec_context.name} video is not a codec browsers play"
            if stream.codec_context.name == "h264" and stream.codec_context.format.name not in BROWSER_PIXEL_FORMATS:
                return f"H.264 in {stream.codec_context.format.name} is not a pixel format browsers play"
        for stream in container.streams.audio[:1]:
            if stream.codec_context.name not in BROWSER_AUDIO_CODECS:
                return f"{stream.codec_context.name} audio is not a codec browsers play"
    return None


def transcode_for_browser(source: Path, target: Path) -> Path:
    """Re-encode ``source`` as MP4 with H.264 (yuv420p, even size) and AAC (when it has audio), using PyAV.

    Video frames keep their timestamps, so a variable frame rate stays in sync with the timeline.
    """
    with av.open(str(source)) as reader, av.open(str(target), "w", options={"movflags": "+faststart"}) as writer:
        video_in = reader.streams.video[0]
        audio_in = reader.streams.audio[0] if reader.streams.audio else None
        rate = video_in.average_rate or 25
        video_out = writer.add_stream("libx264", rate=rate)
        video_out.width = video_in.codec_context.width // 2 * 2
        video_out.height = video_in.codec_context.height // 2 * 2
        video_out.pix_fmt = "yuv420p"
        video_out.codec_context.time_base = video_in.time_base
        video_out.options = {"crf": "23", "preset": "veryfast"}
        audio_out = None
        if audio_in is not None:
            audio_out = writer.add_stream("aac", rate=audio_in.codec_context.sample_rate)
        streams = [video_in] + ([audio_in] if audio_in is not None else [])
        for packet in reader.demux(*streams):
            for frame in packet.decode():
                if packet.stream is video_in:
                    picture = frame.reformat(video_out.width, video_out.height, "yuv420p")
                    picture.pts, picture.time_base = frame.pts, frame.time_base
                    writer.mux(video_out.encode(picture))
                else:
                    frame.pts = None
                    writer.mux(audio_out.encode(frame))
        writer.mux(video_out.encode(None))
        if audio_out is not None:
            writer.mux(audio_out.encode(None))
    return target


def page_video_file(video_path: Path, html_path: Path, mode: str) -> tuple[str, str | None]:
    """The ``src`` of the page's player (relative to the page) and a note when a browser may not play it."""
    if mode not in VIDEO_MODES:
        raise UserError(f"video mode must be one of {', '.join(VIDEO_MODES)}, got {mode!r}")
    problem = browser_problem(video_path)
    target = video_path
    if mode != "link":
        folder = media_folder(html_path)
        folder.mkdir(parents=True, exist_ok=True)
        if mode == "transcode" and problem:
            target = transcode_for_browser(video_path, folder / f"{video_path.stem}.mp4")
            problem = None
        else:
            target = folder / video_path.name
            shutil.copyfile(video_path, target)
    relative = Path(os.path.relpath(target.resolve(), html_path.resolve().parent)).as_posix()
    note = None
    if problem:
        note = f"{video_path}: {problem}; the page may not play it (video mode transcode writes an H.264/AAC copy)"
    return quote(relative), note


def _rounded(array) -> list:
    return np.round(np.asarray(array, dtype=np.float64), DIGITS).tolist()


def _band_rows(matrix: np.ndarray) -> list[list]:
    """Each row of a ``[T, T]`` connection matrix as ``[first column, values...]`` over its non-NaN band.

    Windowed inference relates only seconds that shared a window, so rows are bands:
    a 600-second video stores 600 x ~20 numbers, not 600 x 600.
    """
    rows = []
    for row in np.asarray(matrix, dtype=np.float64):
        known = np.flatnonzero(~np.isnan(row))
        if len(known) == 0:
            rows.append([0])
            continue
        first, last = known[0], known[-1] + 1
        rows.append([int(first)] + _rounded(np.nan_to_num(row[first:last])))
    return rows


def video_entry(video_path: str, result, class_names: list[str], truth: list[str] | None, src: str,
                video_note: str | None = None) -> dict:
    """The page's data for one video: labels as class indices, arrays rounded, maps flattened."""
    document = result.to_dict(include_arrays=False)
    index = {name: i for i, name in enumerate(class_names)}
    segments = document["segments"]
    entry = {
        "video": document["video"], "path": video_path, "src": src, "video_note": video_note,
        "duration": document["duration"], "has_audio": document["has_audio"], "notes": document["notes"], "intervals": document["intervals"],
        "labels": [index[s["label"]] for s in segments],
        "confidence": [round(s["confidence"], DIGITS) for s in segments],
        "probabilities": None if not segments or "probabilities" not in segments[0] else
        [_rounded([s["probabilities"][name] for name in class_names]) for s in segments],
        "truth": None if truth is None else [index[name] for name in truth],
        "frame_size": None if result.frame_size is None else list(result.frame_size),
        "source_maps": None, "peaks": None, "explain": explain_entry(result.explain),
    }
    if result.source_maps is not None:   # maps and peaks of event seconds only: the overlay shows nothing else
        peaks = [s.get("source_peak") for s in segments]
        entry["peaks"] = peaks
        entry["source_maps"] = [None if peak is None else _rounded(result.source_maps[t].ravel())
                                for t, peak in enumerate(peaks)]
    return entry


def explain_entry(explain: dict[str, np.ndarray]) -> dict[str, dict]:
    """What the network explains, by kind for the page: ``maps`` (one flattened map per second,
    drawn over the frame), ``matrix`` (band rows) and ``values`` (per-second numbers)."""
    entry: dict[str, dict] = {"maps": {}, "matrix": {}, "values": {}}
    for name, array in explain.items():
        kind = explain_kind(array)
        if kind == "maps":
            entry[kind][name] = {"side": list(array.shape[1:]), "maps": [_rounded(m.ravel()) for m in array]}
        elif kind == "matrix":
            entry[kind][name] = _band_rows(array)
        else:
            entry[kind][name] = _rounded(array.reshape(len(array), -1))
    return entry


def render_page(data: dict) -> str:
    """The template with ``data`` embedded as JSON (``<`` escaped so no string can close the script)."""
    template = resources.files("avepipe").joinpath("report_page.html").read_text(encoding="utf-8")
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
    return template.replace(DATA_MARK, payload)


def write_report(html_path: Path, done: list[tuple[str, object]], class_names: list[str], *,
                 truths: dict[str, list[str]], extractor, checkpoint: Path, source_checkpoint: Path | None = None,
                 video_mode: str = "link", errors: list[dict] | None = None) -> list[str]:
    """Write the page for ``done`` (``[(video path, LocalizationResult)]``); returns notes for the user."""
    html_path = Path(html_path)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    colours = label_colours(class_names)
    videos, notes = [], []
    for video_path, result in done:
        src, note = page_video_file(Path(video_path), html_path, video_mode)
        notes += [note] if note else []
        videos.append(video_entry(video_path, result, class_names, truths.get(result.video), src, note))
    data = {
        "classes": class_names, "background": len(class_names) - 1,
        "colours": ["#{:02x}{:02x}{:02x}".format(*(round(255 * c) for c in colours[name][:3]))
                    for name in class_names],
        "videos": videos, "errors": errors or [],
        "provenance": {"checkpoint": str(checkpoint),
                       "source_checkpoint": None if source_checkpoint is None else str(source_checkpoint),
                       "extractor": json.loads(extractor.to_json()), "random_backbones": extractor.is_random,
                       "avepipe": __version__,
                       "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")},
    }
    html_path.write_text(render_page(data), encoding="utf-8")
    return notes
