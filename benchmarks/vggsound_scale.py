"""VGGSound-AVEL100k scale: a feature cache of 10k and 100k videos on this machine's disk and cores.

For each size N (default 10,000 and 100,000) it makes, once (reruns finish it), a
float16 cache of features generated directly (no CNN; real dimensions
[T,7,7,512] + [T,128], ``--segments`` T per video so that the disk holds 100k of
them): 1,000 videos by a ``CacheWriter``, the bulk cloned from its first part (a
writer on a shared 2-core machine is too slow for 100k; the clones are the files a
writer makes, byte for byte, but for the id), then the last 100 by a second
``CacheWriter`` - an interrupted extraction being resumed into a 100k cache (its
open and close include the directory scan and the index rewrite). Then, for the
parts and again for the packed copy (data/cache/packed.py, after ``pack_cache``, which
takes a clone's arrays from the template instead of opening its HDF5 file, so pack
time is that of the real parts only), each in its own child process so that peak
RSS is per size:

- ``open``: ``FeatureCache`` + ``FeatureDataset`` over all N videos (what
  ``avepipe train`` does before its first step), and ``cache info``;
- ``epoch``: a shuffled epoch read through the streaming loader (DataLoader,
  batch 128, no workers; the pages of every file the benchmark wrote synced and
  dropped first, so it is what a cache larger than RAM costs and every size starts
  from the same free memory, reported as ``free_memory_mb_before``), the whole epoch or its first ``--epoch-videos``
  videos (a part of an epoch flatters small caches: the kernel's read-ahead brings
  neighbouring rows that the rest of a small epoch then finds in memory): wall and CPU
  (user, system) milliseconds per video, the epoch time projected from them, peak
  RSS; then the same videos again from the page cache ("warm": what the code
  itself costs, without the disk and the kernel's I/O path); ``--repeats`` times, in rounds alternating the sizes, median and minimum
  reported (the machine is shared: the least disturbed run is the code's own cost);
- ``labels``: ``load_vggsound`` of N label zips in the authors' format (written
  once beside the cache), cold (no label index, pages dropped) and with the index;
- ``step`` (once): wall and CPU seconds of fully supervised PSP training compute per
  video (forward, backward, Adam, batch 128, T segments) on in-memory tensors.

CPU seconds are reported beside wall seconds because the machine is shared: wall
time there measures the neighbours as much as the code. Prints one JSON line per
(form, size), one per size for the labels, and a summary line (ratios
largest/smallest, read vs compute, CPU model and flags, load average).
Everything written is deleted at the end unless ``--keep``; with ``--keep`` a
rerun finds the caches, the packed copies and the label files and only measures.

    nice -n 10 python benchmarks/vggsound_scale.py [--videos 10000,100000] [--segments 1] [--dir /tmp/x]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from avepipe import __version__  # noqa: E402
from benchmarks._child import peak_rss_mb, run_child  # noqa: E402
from benchmarks._machine import machine  # noqa: E402
from avepipe.data.cache import FeatureCache, layout  # noqa: E402
from avepipe.data.cache.packed import open_packed  # noqa: E402
from avepipe.data.cache.packer import pack_cache  # noqa: E402
from avepipe.extract.provenance import ExtractorConfig  # noqa: E402

CLASSES = 141
WRITTEN = 1000      # videos written by the first CacheWriter
RESUMED = 100       # videos written by the second (resuming) CacheWriter


def video_ids(videos: int) -> list[str]:
    return [f"vid{i:06d}_000030" for i in range(videos)]


def write_cache(path: Path, videos: int, segments: int) -> dict:
    """Write (or finish) the cache: ``WRITTEN`` videos by a ``CacheWriter``, the bulk cloned from its first part
    (on a shared 2-core machine a writer does ~15-400 videos/s), then the last 100 by a resuming ``CacheWriter``."""
    from tqdm import tqdm

    from avepipe.data.cache import CacheWriter
    from avepipe.extract.features import VideoFeatures

    rng = np.random.default_rng(0)
    config = ExtractorConfig(segments=segments)
    ids = video_ids(videos)
    timings = {}
    for phase, wanted in (("first_writer", ids[:WRITTEN]), ("clone", ids[:-RESUMED]), ("resuming_writer", ids)):
        started = _clock()
        if phase == "clone":
            count = clone_parts(path, ids[0], wanted)
            timings[phase] = {"videos_written": count, "seconds": _since(started)[0]}
            continue
        with CacheWriter(path, config, dtype="float16") as writer:
            opened = _since(started)
            done = writer.done_ids
            todo = [v for v in wanted if v not in done]
            for vid in tqdm(todo, desc=f"{phase} {path.name}", unit="video", mininterval=10):
                visual = rng.standard_normal((segments, 7, 7, 512)).astype(np.float16)
                audio = rng.standard_normal((segments, 128)).astype(np.float16)
                writer.write(VideoFeatures(vid, visual, audio, float(segments), 16.0, True))
            closing = _clock()
        closed = _since(closing)
        timings[phase] = {"videos_written": len(todo), "open_s": opened[0], "open_cpu_s": opened[1],
                          "close_s": closed[0], "close_cpu_s": closed[1], "seconds": _since(started)[0]}
    return timings


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    """(wall, CPU) seconds since ``start`` (a ``_clock()``)."""
    return time.perf_counter() - start[0], time.process_time() - start[1]


def write_label_files(root: Path, videos: int):
    """VGGSound-AVEL label files for the ids, in the authors' formats: metadata CSV, category list and one zip
    per video (written once; a killed run leaves only a ``.tmp`` folder, redone next time)."""
    from avepipe.data.vggsound import VGGSoundFiles, write_vggsound_files

    if not root.is_dir():
        rng = np.random.default_rng(1)
        classes = [f"category {c:03d}" for c in range(CLASSES)]
        tmp = root.with_name(root.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        write_vggsound_files(tmp, ((v, classes[i % CLASSES], ("train", "val", "test")[i % 3], rng.integers(0, 2, 10))
                                   for i, v in enumerate(video_ids(videos))), classes)
        os.replace(tmp, root)
    return VGGSoundFiles(root / "metadata.csv", root / "categories.txt", root / "labels")


def clone_parts(cache: Path, template_id: str, wanted: list[str]) -> int:
    """Copies of the part of ``template_id`` under the names and ids of the missing ``wanted`` videos.

    The id is a fixed-length string stored once in the part, so replacing its bytes gives exactly the
    file a writer would have made for the same features (same size, same HDF5 layout).
    """
    from tqdm import tqdm

    from avepipe.data.cache import layout

    parts = layout.parts_dir(cache)
    template = (parts / layout.part_name(template_id)).read_bytes()
    assert template.count(template_id.encode()) == 1
    existing = set(layout.list_part_names(parts))
    todo = [v for v in wanted if layout.part_name(v) not in existing]
    index = layout.read_index(cache)
    summary = index.table.summary(int(index.table.rows([template_id])[0]))
    clones = {}
    for vid in tqdm(todo, desc=f"cloning parts {cache.name}", unit="video", mininterval=10):
        (parts / layout.part_name(vid)).write_bytes(template.replace(template_id.encode(), vid.encode()))
        clones[layout.part_name(vid)] = replace(summary, video_id=vid)
    # the index a writer's close would have left (else the next writer opens every clone to summarise it)
    layout.write_index(cache, index.extractor_json, index.dtype, index.table.updated(layout.PartTable.of(clones)),
                       __version__)
    return len(todo)


class CloneAwareCache(FeatureCache):
    """``pack_cache``'s source of arrays: a part that is byte for byte a clone of the template part (its id
    aside) holds the template's arrays, read once; any other part is read from its file. The packed copy is
    the same as from the plain reader, without 100k HDF5 opens on a shared machine."""

    def __init__(self, cache: Path, template_id: str):
        super().__init__(cache)
        self._parts_dir = layout.parts_dir(cache)
        self._template_id = template_id
        self._template = (self._parts_dir / layout.part_name(template_id)).read_bytes()
        self._arrays = super().read_arrays(template_id, ("visual", "audio"), dtype=None)

    def read_arrays(self, video_id, keys=("visual", "audio"), dtype=None):
        clone = self._template.replace(self._template_id.encode(), video_id.encode())
        if tuple(keys) == ("visual", "audio") and dtype is None and \
                (self._parts_dir / layout.part_name(video_id)).read_bytes() == clone:
            return self._arrays
        return super().read_arrays(video_id, keys, dtype=dtype)


def labels(videos: int):
    """VGGSound-like annotations: one category per video, event flags in some seconds."""
    from avepipe.data.annotations import Annotations, Event, VideoRecord

    classes = [f"category {c:03d}" for c in range(CLASSES)]
    records = [VideoRecord(v, v, (Event(1.0, 9.0, classes[i % CLASSES]),)) for i, v in enumerate(video_ids(videos))]
    return Annotations(records, classes, "<benchmark>")


def drop_page_cache(directory: Path) -> None:
    """Ask the kernel to forget the pages of every file under ``directory`` (no root needed for files we own)."""
    for root, _, files in os.walk(directory):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def free_memory_mb() -> float:
    """MemFree of /proc/meminfo: how much a cold read can take without reclaiming other pages first."""
    with open("/proc/meminfo") as handle:
        fields = dict(line.split(":", 1) for line in handle)
    return int(fields["MemFree"].split()[0]) / 1024


def read_parts_only() -> None:
    """Make ``FeatureDataset`` ignore packed copies in this (child) process, so the parts are what is measured."""
    from avepipe.data.cache.reader import FeatureCache

    FeatureCache.packed = property(lambda cache: None)


def run_open(cache: Path, videos: int) -> dict:
    from avepipe.data.cache import FeatureCache
    from avepipe.data.dataset import FeatureDataset

    annotations = labels(videos)
    started = _clock()
    FeatureCache(cache)
    cache_s = _since(started)
    started = _clock()
    dataset = FeatureDataset([cache], annotations, annotations.video_ids, in_memory=False)
    dataset_s = _since(started)
    started = _clock()
    info = FeatureCache(cache).info()
    info_s = _since(started)
    return {"open_cache_s": cache_s[0], "open_cache_cpu_s": cache_s[1], "open_dataset_s": dataset_s[0],
            "open_dataset_cpu_s": dataset_s[1], "cache_info_s": info_s[0], "cache_info_cpu_s": info_s[1],
            "size_gb": info["size_bytes"] / 1e9, "videos": info["videos"], "packed": dataset.packed}


def run_labels(root: Path, videos: int) -> dict:
    """``load_vggsound`` of ``videos`` label zips: cold (no label index, file pages dropped) and then with the
    index it wrote (a second start)."""
    from avepipe.data.label_index import INDEX_NAME
    from avepipe.data.vggsound import load_vggsound

    files = write_label_files(root, videos)
    (files.labels_dir / INDEX_NAME).unlink(missing_ok=True)
    drop_page_cache(files.metadata.parent)
    started = _clock()
    cold = load_vggsound(files, progress=False)
    cold_s = _since(started)
    started = _clock()
    indexed = load_vggsound(files, progress=False)
    indexed_s = _since(started)
    assert (files.labels_dir / INDEX_NAME).is_file() and len(cold) == len(indexed) == videos
    return {"labels_cold_s": cold_s[0], "labels_cold_cpu_s": cold_s[1], "labels_indexed_s": indexed_s[0],
            "labels_indexed_cpu_s": indexed_s[1],
            "label_index_mb": (files.labels_dir / INDEX_NAME).stat().st_size / 1e6}


def run_epoch(cache: Path, videos: int, batch: int, limit: int) -> dict:
    import torch
    from torch.utils.data import DataLoader, RandomSampler

    from avepipe.data.dataset import FeatureDataset, already_batched

    annotations = labels(videos)
    dataset = FeatureDataset([cache], annotations, annotations.video_ids, in_memory=False)
    def shuffled():
        return DataLoader(dataset, batch_size=batch, collate_fn=already_batched,
                          sampler=RandomSampler(dataset, generator=torch.Generator().manual_seed(0)))

    # Every size's files are dropped, not this size's only: otherwise the larger cache's cold epoch also pays for
    # reclaiming the pages the smaller one left (measured: system time per read grew with it).
    os.sync()
    drop_page_cache(cache.parent.parent)
    free_mb = free_memory_mb()
    cold = timed_pass(shuffled(), limit)
    warm = timed_pass(shuffled(), limit)    # the same videos again, now in the page cache: the code's own cost
    wall, cpu = cold["wall"], cold["user"] + cold["system"]
    per = 1e3 / cold["videos"]
    return {"packed": dataset.packed, "free_memory_mb_before": free_mb, "videos_read": cold["videos"], "read_ms_per_video": wall * per,
            "read_cpu_ms_per_video": cpu * per, "read_user_ms_per_video": cold["user"] * per,
            "read_sys_ms_per_video": cold["system"] * per, "epoch_read_s": wall * len(dataset) / cold["videos"],
            "epoch_read_cpu_s": cpu * len(dataset) / cold["videos"],
            "read_warm_ms_per_video": 1e3 * warm["wall"] / warm["videos"],
            "read_warm_cpu_ms_per_video": 1e3 * (warm["user"] + warm["system"]) / warm["videos"]}


def timed_pass(loader, limit: int) -> dict:
    """Wall, user and system seconds of reading the loader's first ``limit`` videos (its sampler is seeded)."""
    start, seen = os.times(), 0
    for item in loader:
        seen += item["audio"].shape[0]
        if seen >= limit:
            break
    end = os.times()
    return {"videos": seen, "wall": end.elapsed - start.elapsed, "user": end.user - start.user,
            "system": end.system - start.system}


def combine_repeats(runs: list[dict]) -> dict:
    """Median of each figure over the repeats, the minimum of the read times beside it (``_min``: the run least
    disturbed by other jobs), every repeat's read times, and the largest peak RSS."""
    out = {key: float(np.median([r[key] for r in runs])) for key in runs[0] if isinstance(runs[0][key], float)}
    out.update({f"{key}_min": min(r[key] for r in runs)
                for key in ("read_ms_per_video", "read_cpu_ms_per_video", "read_warm_cpu_ms_per_video")})
    out.update(packed=runs[0]["packed"], videos_read=runs[0]["videos_read"], peak_rss_mb=max(r["peak_rss_mb"] for r in runs),
               repeats=[[round(r["read_ms_per_video"], 3), round(r["read_cpu_ms_per_video"], 3)] for r in runs])
    return out


def run_step(segments: int, batch: int, steps: int = 6) -> dict:
    """PSP training compute per video (benchmarks/train_memory_scaling.py's step, at these sizes)."""
    from benchmarks.train_memory_scaling import run_step as psp_step

    step = psp_step(steps, batch, segments, CLASSES)
    return {"compute_ms_per_video": 1e3 * segments / step["step_segments_per_s"],
            "compute_cpu_ms_per_video": 1e3 * segments * step["step_cpu_s_per_segment"], "threads": step["threads"]}


def _child(args) -> None:
    if args.form == "parts":
        read_parts_only()
    if args.child == "open":
        result = run_open(args.cache, args.n)
    elif args.child == "epoch":
        result = run_epoch(args.cache, args.n, args.batch_size, args.epoch_videos or args.n)
    elif args.child == "labels":
        result = run_labels(args.cache, args.n)
    else:
        result = run_step(args.segments, args.batch_size)
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def _spawn(kind: str, args, cache: Path | None = None, videos: int = 0, form: str = "packed") -> dict:
    arguments = ["--child", kind, "--segments", str(args.segments), "--batch-size", str(args.batch_size),
                 "--n", str(videos), "--epoch-videos", str(args.epoch_videos), "--form", form]
    return run_child(__file__, arguments + (["--cache", str(cache)] if cache else []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", default="10000,100000", help="cache sizes (comma-separated)")
    parser.add_argument("--segments", type=int, default=1, help="segments per video (AVE/VGGSound: 10)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epoch-videos", type=int, default=0,
                        help="videos read of each shuffled epoch (default 0: all of it; else the epoch time is "
                             "projected from them)")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "avepipe_vggsound_scale")
    parser.add_argument("--repeats", type=int, default=3,
                        help="epoch reads per form and size, in alternating rounds (median and minimum reported)")
    parser.add_argument("--only-write", action="store_true", help="write the caches and stop")
    parser.add_argument("--keep", action="store_true", help="keep the caches (default: delete them at the end)")
    parser.add_argument("--child", choices=["open", "epoch", "labels", "step"], help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--form", choices=["parts", "packed"], default="packed", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    sizes = [int(v) for v in args.videos.split(",")]
    args.dir.mkdir(parents=True, exist_ok=True)
    caches, results = {}, {}
    for videos in sizes:
        cache = args.dir / f"n{videos}" / "features.h5"
        cache.parent.mkdir(exist_ok=True)
        written = write_cache(cache, videos, args.segments)
        write_label_files(cache.parent / "vggsound", videos)
        if not args.only_write and open_packed(cache, ExtractorConfig(segments=args.segments).to_json()) is None:
            started = time.perf_counter()
            pack_cache(CloneAwareCache(cache, video_ids(videos)[0]))
            written["pack_s"] = time.perf_counter() - started
        caches[videos] = cache
        results["write", videos] = written
        print(json.dumps({"benchmark": "vggsound_scale_write", "videos": videos, "write": written}), flush=True)
    if args.only_write:
        return
    forms = ("parts", "packed")
    for form in forms:
        for videos in sizes:
            results[form, videos] = {"benchmark": "vggsound_scale", "form": form, "videos": videos,
                                     "segments": args.segments, "dtype": "float16",
                                     **_spawn("open", args, caches[videos], videos, form)}
            results[form, videos]["open_peak_rss_mb"] = results[form, videos].pop("peak_rss_mb")
    # Epochs in rounds, the sizes alternating, so that a change of load on a shared machine hits every size.
    epochs = {(form, videos): [] for form in forms for videos in sizes}
    for _ in range(args.repeats):
        for form in forms:
            for videos in sizes:
                epochs[form, videos].append(_spawn("epoch", args, caches[videos], videos, form))
    for (form, videos), runs in epochs.items():
        results[form, videos].update(combine_repeats(runs))
        assert results[form, videos]["packed"] == (form == "packed"), results[form, videos]
        print(json.dumps(results[form, videos]), flush=True)
    for videos in sizes:
        results["labels", videos] = _spawn("labels", args, caches[videos].parent / "vggsound", videos)
        print(json.dumps({"benchmark": "vggsound_scale_labels", "videos": videos, **results["labels", videos]}),
              flush=True)
    step = _spawn("step", args)
    summary = {"benchmark": "vggsound_scale_summary", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               **machine(), "load_avg": os.getloadavg(), "segments": args.segments,
               "batch_size": args.batch_size, "psp_compute": step, "sizes": sizes}
    for form in ("parts", "packed"):
        small, large = results[form, min(sizes)], results[form, max(sizes)]
        summary[form] = {
            "read_ms_per_video_ratio": large["read_ms_per_video"] / small["read_ms_per_video"],
            "read_cpu_ms_per_video_ratio": large["read_cpu_ms_per_video"] / small["read_cpu_ms_per_video"],
            "read_min_ms_per_video_ratio": large["read_ms_per_video_min"] / small["read_ms_per_video_min"],
            "read_min_cpu_ms_per_video_ratio": large["read_cpu_ms_per_video_min"] / small["read_cpu_ms_per_video_min"],
            "read_warm_cpu_ms_per_video_ratio": large["read_warm_cpu_ms_per_video"]
            / small["read_warm_cpu_ms_per_video"],
            "peak_rss_ratio": large["peak_rss_mb"] / small["peak_rss_mb"],
            "open_for_training_largest_s": large["open_dataset_s"],
            "open_for_training_largest_cpu_s": large["open_dataset_cpu_s"],
            "read_over_compute_per_epoch": {str(v): results[form, v]["read_ms_per_video"]
                                            / step["compute_ms_per_video"] for v in sizes},
            "read_cpu_over_compute_cpu_per_epoch": {str(v): results[form, v]["read_cpu_ms_per_video"]
                                                    / step["compute_cpu_ms_per_video"] for v in sizes},
        }
    summary["labels"] = {str(v): results["labels", v] for v in sizes}
    summary["write"] = {str(v): results["write", v] for v in sizes}
    print(json.dumps(summary), flush=True)
    if not args.keep:
        shutil.rmtree(args.dir)


if __name__ == "__main__":
    main()
