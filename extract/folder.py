"""Which files of a folder are videos, and their ids (file stems; files sharing a stem are refused, both)."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

VIDEO_EXTENSIONS = "mp4,m4v,mkv,webm,avi,mov,flv,wmv,mpg,mpeg,ts,mts,3gp,ogv"


def discover_videos(folder: Path, extensions: str) -> list[Path]:
    """Files under ``folder`` (recursively) whose extension is listed, case-insensitively, sorted."""
    wanted = {"." + e.strip().lower().lstrip(".") for e in extensions.split(",") if e.strip()}
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in wanted)


def split_duplicate_ids(paths: list[Path]) -> tuple[dict[str, Path], list[tuple[Path, str]]]:
    """Video id = file stem. Files sharing an id are ambiguous: all of them become errors."""
    by_id: dict[str, list[Path]] = defaultdict(list)
    for path in paths:
        by_id[path.stem].append(path)
    unique = {vid: group[0] for vid, group in by_id.items() if len(group) == 1}
    errors = [(path, f"duplicate video id {vid!r} (also {', '.join(str(o) for o in group if o != path)}); rename one")
              for vid, group in by_id.items() if len(group) > 1 for path in group]
    return unique, errors
