"""The recipe of tests/data/legacy_cache/: two tiny caches written by avepipe at commit 0ea6ca6.

The test regenerates the expected arrays from this recipe (``make_features``
is seeded by the video id) and compares them with what the current code reads
from the committed files, so a change of the on-disk format or of the reader
that loses old caches fails. ``write_legacy_caches`` made the files; it imports
the writer under its old module path, so it only runs against that commit:

    git archive 0ea6ca6 | tar -x -C /tmp/old && cp tests/_legacy_cache.py /tmp/old/tests/
    cd /tmp/old/avepipe && ln -s ../data data && ln -s ../extract extract && ln -s ../models models
    cd /tmp/old && PYTHONPATH=/tmp/old python -c \
        "from tests._legacy_cache import write_legacy_caches; write_legacy_caches('OUT')"
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from avepipe.extract.features import VideoFeatures
from tests._cache_helpers import CONFIG, make_features

COMMIT = "0ea6ca6"
LEGACY_DIR = Path(__file__).parent / "data" / "legacy_cache"


@dataclass(frozen=True)
class Video:
    video_id: str
    segments: int
    has_audio: bool = True
    has_video: bool = True


# file name -> (storage dtype, videos). "alpha" is in both caches on purpose (the duplicate-id rule).
CACHES = {
    "f32.h5": ("float32", (Video("alpha", 1), Video("beta gamma/é", 2, has_video=False))),
    "f16.h5": ({"visual": "float16", "audio": "float32"}, (Video("alpha", 1), Video("delta", 2, has_audio=False))),
}
EXTRA_ATTRS = {"beta gamma/é": {"ave_row": 7}}
ERRORS = {"f32.h5": [("broken.mp4", "no video stream")]}
SHARD_IDS = {"f16.h5": ["alpha", "delta", "epsilon"]}    # shard 0/1 of f16.h5; "epsilon" never finished


def legacy_features(video: Video) -> VideoFeatures:
    features = make_features(video.video_id, video.segments, has_audio=video.has_audio)
    if not video.has_video:
        features.visual[:] = 0
        features = replace(features, has_video=False)
    return features


def write_legacy_caches(out_dir: str | Path) -> None:
    from avepipe.data.shards import Shard, write_manifest          # 0ea6ca6 module paths
    from avepipe.extract.cache_writer import CacheWriter

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, (dtype, videos) in CACHES.items():
        with CacheWriter(out_dir / name, CONFIG, dtype) as writer:
            for video in videos:
                writer.write(legacy_features(video), EXTRA_ATTRS.get(video.video_id))
            for path, reason in ERRORS.get(name, ()):
                writer.record_error(path, reason)
        if name in SHARD_IDS:
            write_manifest(out_dir / name, Shard(0, 1), SHARD_IDS[name])
