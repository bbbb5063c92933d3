"""Sharded extraction into one cache: which videos each of N processes owns, and how far each got.

N extraction processes (torchrun ranks, or ``avepipe extract --shard I/N`` on
any machines sharing the file system) write into the same ``CACHE.parts/``;
nothing is merged or copied afterwards, the cache simply is the union (see
``layout``).

- Ownership: video ``id`` belongs to shard ``int(sha256(id)[:16], 16) % N``. It
  depends on the id alone, so shards are disjoint whatever each process's
  folder listing, and a video keeps its shard when files are added or removed
  (round-robin over the sorted list would move videos between shards when one
  file is added). Shard sizes are therefore equal only on average.
- ``CACHE.shards/shard-I-of-N.json``: written atomically when shard I starts:
  the ids it owns. Which of them are done is not recorded there but read from
  the parts directory (the truth), so a killed shard leaves nothing to repair:
  rerun it alone and it does exactly its missing videos.
- ``CACHE.shards/shard-I-of-N.errors.json``: the inputs shard I failed on in its
  last run (each shard keeps its own, so shards never overwrite each other's).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from avepipe.errors import UserError
from avepipe.data.cache.layout import atomic_file

MANIFEST_RE = re.compile(r"^shard-(\d+)-of-(\d+)\.json$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``."""

    index: int
    count: int

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def name(self) -> str:
        return f"shard-{self.index}-of-{self.count}"

    def owns(self, video_id: str) -> bool:
        return shard_of(video_id, self.count) == self.index


def shard_of(video_id: str, count: int) -> int:
    """The shard that extracts ``video_id`` when there are ``count`` shards."""
    return int(hashlib.sha256(video_id.encode("utf-8")).hexdigest()[:16], 16) % count


def parse_shard(text: str) -> Shard:
    """``"I/N"`` with 0 <= I < N, else a UserError."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not int(match[1]) < int(match[2]):
        raise UserError(f"--shard {text!r}: expected I/N with 0 <= I < N, e.g. 0/4")
    return Shard(int(match[1]), int(match[2]))


def shards_dir(cache: Path) -> Path:
    return cache.with_name(cache.name + ".shards")


def manifest_path(cache: Path, shard: Shard) -> Path:
    return shards_dir(cache) / f"{shard.name}.json"


def errors_path(cache: Path, shard: Shard) -> Path:
    return shards_dir(cache) / f"{shard.name}.errors.json"


def write_manifest(cache: Path, shard: Shard, owned: Iterable[str]) -> None:
    """Record (atomically) the ids ``shard`` is responsible for in this run."""
    shards_dir(cache).mkdir(parents=True, exist_ok=True)
    body = {"shard": shard.index, "of": shard.count, "ids": sorted(owned)}
    with atomic_file(manifest_path(cache, shard)) as tmp:
        tmp.write_text(json.dumps(body, ensure_ascii=False) + "\n", encoding="utf-8")


def shard_status(cache: Path, done: set[str], max_missing: int = 20) -> list[dict]:
    """Per manifest: expected, done, failed in its last run, the first ``max_missing`` missing ids."""
    directory = shards_dir(cache)
    if not directory.is_dir():
        return []
    found = sorted((int(m[2]), int(m[1])) for m in map(MANIFEST_RE.match, (p.name for p in directory.iterdir()))
                   if m)
    status = []
    for count, index in found:
        shard = Shard(index, count)
        path = manifest_path(cache, shard)
        try:
            owned = json.loads(path.read_text(encoding="utf-8"))["ids"]
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"{path}: unreadable shard manifest ({exc}); rerun that shard to rewrite it") from exc
        errors = errors_path(cache, shard)
        failed = len(json.loads(errors.read_text(encoding="utf-8"))) if errors.exists() else 0
        missing = [vid for vid in owned if vid not in done]
        status.append({"shard": shard.label, "expected": len(owned), "done": len(owned) - len(missing),
                       "failed_last_run": failed, "complete": not missing, "missing": missing[:max_missing],
                       "missing_count": len(missing)})
    return status
