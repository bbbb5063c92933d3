"""What ``avepipe cache info`` reports: a JSON-able summary of a cache, and its text form."""
from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

from avepipe.data.cache import layout
from avepipe.data.cache.shards import shard_status


def summarise(cache) -> dict[str, Any]:
    """Of an open ``FeatureCache`` (which calls this as ``info()``, hence no import of it here): counts, segment histogram, dtype, provenance, size on disk and sharded-extraction progress."""
    table, parts = cache.table, layout.parts_dir(cache.path)
    histogram = Counter(table.segments.tolist())
    part_bytes = sum(os.stat(parts / name.decode()).st_size for name in table.parts)
    index_bytes = cache.path.stat().st_size if cache.path.exists() else 0
    errors_file = layout.errors_path(cache.path)
    errors = json.loads(errors_file.read_text(encoding="utf-8")) if errors_file.exists() else []
    return {
        "path": str(cache.path),
        "videos": len(table),
        "segments_total": int(table.segments.sum()),
        "segments_histogram": {str(t): n for t, n in sorted(histogram.items())},
        "no_audio": int((~table.has_audio).sum()),
        "no_video": int((~table.has_video).sum()),
        "dtype": dict(cache.dtype),
        "extractor": json.loads(cache.config.to_json()),
        "random_backbones": cache.config.is_random,
        "size_bytes": part_bytes + index_bytes,
        "parts_dir": str(parts),
        "errors_last_run": len(errors),
        "shards": shard_status(cache.path, set(table.ids.tolist())),
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The human-readable form of ``summarise``'s result (one fact per line)."""
    dtype = summary["dtype"]
    lines = [
        f"cache:        {summary['path']}",
        f"videos:       {summary['videos']} ({summary['segments_total']} segments)",
        "segments:     " + (", ".join(f"T={t}: {n}" for t, n in summary["segments_histogram"].items()) or "-"),
        f"dtype:        visual {dtype['visual']}, audio {dtype['audio']}",
        f"no audio:     {summary['no_audio']}",
        f"no video:     {summary['no_video']}",
        f"size on disk: {summary['size_bytes'] / 2**20:.1f} MiB",
        f"errors:       {summary['errors_last_run']} in the last run",
        "extractor:" + ("      (RANDOM backbones: smoke tests only)" if summary["random_backbones"] else ""),
    ]
    lines += [f"  {key}: {value}" for key, value in summary["extractor"].items()]
    if summary["shards"]:
        complete = sum(s["complete"] for s in summary["shards"])
        lines.append(f"shards:       {complete} of {len(summary['shards'])} complete")
        for s in summary["shards"]:
            missing = "" if s["complete"] else (f", missing {s['missing_count']}: " + ", ".join(s["missing"])
                                                 + (", ..." if s["missing_count"] > len(s["missing"]) else ""))
            failed = f", {s['failed_last_run']} failed in its last run" if s["failed_last_run"] else ""
            lines.append(f"  shard {s['shard']}: {s['done']} of {s['expected']} done{failed}{missing}")
    return "\n".join(lines)
