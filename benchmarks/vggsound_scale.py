"""VGGSound-AVEL100k scale: a feature cache of 10k and 100k videos on this machine's disk and cores.

For each size N (default 10,000 and 100,000) it writes, once (reruns resume it), a
float16 cache of features generated directly (no CNN; real dimensions
[T,7,7,512] + [T,128], ``--segments`` T per video so that the disk holds 100k of
them) with ``CacheWriter`` - N-100 videos, closed, then the last 100 by a second
writer, which is exactly an interrupted extraction being resumed. Then, each in
its own child process so that peak RSS is per size:

- ``open``: ``FeatureCache`` + ``FeatureDataset`` over all N videos (what
  ``avepipe train`` does before its first step), and ``cache info``;
- ``epoch``: one shuffled epoch read through the streaming loader (DataLoader,
  batch 128, no workers, the page cache of the cache's files dropped first, so it
  is what a cache larger than RAM costs): seconds per epoch, per video, and peak RSS;
- ``step`` (once): seconds of fully supervised PSP training compute per video
  (forward, backward, Adam, batch 128, T segments) on in-memory tensors, to set
  against the read time.

With ``--packed`` the same is measured on the packed, read-optimised form
(data/packed_cache.py) after ``pack_cache``. Prints one JSON line per size and a
summary line with the ratios 100k/10k and the CPU model and flags. Caches are
deleted afterwards unless ``--keep``.

    nice -n 19 python benchmarks/vggsound_scale.py [--videos 10000,100000] [--segments 2] [--dir /tmp/x]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CLASSES = 141
RESUMED = 100       # videos written by the second (resuming) writer
POOL = 16           # distinct random feature blocks; each video also gets its index written in


def cpu_description() -> dict:
    """CPU model and flags from /proc/cpuinfo (what the numbers were measured on)."""
    model, flags = "unknown", []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = value.split()
    except OSError:
        pass
    return {"cpu_model": model, "cpu_flags": " ".join(flags), "cpus": os.cpu_count()}


def video_ids(videos: int) -> list[str]:
    return [f"vid{i:06d}_000030" for i in range(videos)]


def write_cache(path: Path, videos: int, segments: int) -> dict:
    """Write (or finish) the cache; time the first writer and the resuming one separately."""
    from tqdm import tqdm

    from avepipe.extract.cache_writer import CacheWriter
    from avepipe.extract.features import VideoFeatures
    from avepipe.extract.provenance import ExtractorConfig

    rng = np.random.default_rng(0)
    visual_pool = rng.standard_normal((POOL, segments, 7, 7, 512)).astype(np.float16)
    audio_pool = rng.standard_normal((POOL, segments, 128)).astype(np.float16)
    config = ExtractorConfig(segments=segments)
    ids = video_ids(videos)
    timings = {}
    for phase, wanted in (("first_writer", ids[:-RESUMED]), ("resuming_writer", ids)):
        started = time.perf_counter()
        with CacheWriter(path, config, dtype="float16") as writer:
            opened = time.perf_counter() - started
            done = writer.done_ids
            todo = [(i, v) for i, v in enumerate(wanted) if v not in done]
            for i, vid in tqdm(todo, desc=f"{phase} {path.name}", unit="video", mininterval=10):
                visual = visual_pool[i % POOL].copy()
                visual[0, 0, 0, 0] = i % 2048
                writer.write(VideoFeatures(vid, visual, audio_pool[i % POOL], float(segments), 16.0, True))
        timings[phase] = {"videos_written": len(todo), "open_s": opened,
                          "seconds": time.perf_counter() - started}
    return timings


def labels(videos: int):
    """VGGSound-like annotations: one category per video, event flags in some seconds."""
    from avepipe.data.annotations import Annotations, Event, VideoRecord

    classes = [f"category {c:03d}" for c in range(CLASSES)]
    records = [VideoRecord(v, v, (Event(1.0, 9.0, classes[i % CLASSES]),)) for i, v in enumerate(video_ids(videos))]
    return Annotations(records, classes, "<benchmark>")


def drop_page_cache(path: Path) -> None:
    """Ask the kernel to forget the cache's file pages (no root needed for files we own)."""
    for directory in (path.parent,):
        for root, _, files in os.walk(directory):
            for name in files:
                fd = os.open(os.path.join(root, name), os.O_RDONLY)
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)


def run_open(cache: Path, videos: int) -> dict:
    from avepipe.data.cache import FeatureCache
    from avepipe.data.dataset import FeatureDataset

    annotations = labels(videos)
    started = time.perf_counter()
    FeatureCache(cache)
    cache_s = time.perf_counter() - started
    started = time.perf_counter()
    dataset = FeatureDataset([cache], annotations, annotations.video_ids, in_memory=False)
    dataset_s = time.perf_counter() - started
    started = time.perf_counter()
    info = FeatureCache(cache).info()
    return {"open_cache_s": cache_s, "open_dataset_s": dataset_s, "cache_info_s": time.perf_counter() - started,
            "size_gb": info["size_bytes"] / 1e9, "videos": info["videos"], "packed": getattr(dataset, "packed", False)}


def run_epoch(cache: Path, videos: int, batch: int) -> dict:
    import torch
    from torch.utils.data import DataLoader, RandomSampler

    from avepipe.data.dataset import FeatureDataset, already_batched

    annotations = labels(videos)
    dataset = FeatureDataset([cache], annotations, annotations.video_ids, in_memory=False)
    loader = DataLoader(dataset, batch_size=batch, collate_fn=already_batched,
                        sampler=RandomSampler(dataset, generator=torch.Generator().manual_seed(0)))
    drop_page_cache(cache)
    started, seen = time.perf_counter(), 0
    for item in loader:
        seen += item["audio"].shape[0]
    seconds = time.perf_counter() - started
    return {"epoch_read_s": seconds, "read_ms_per_video": 1e3 * seconds / seen, "videos_read": seen}


def run_step(segments: int, batch: int, steps: int = 6) -> dict:
    import torch

    from avepipe.models import build_model

    torch.manual_seed(0)
    net = build_model("psp", "fully", num_classes=CLASSES)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    audio, visual = torch.randn(batch, segments, 128), torch.rand(batch, segments, 7, 7, 512)
    segment_labels = torch.randint(0, CLASSES + 1, (batch, segments))
    video_labels = torch.zeros(batch, CLASSES + 1)

    def step():
        loss = net.compute_loss(net(audio, visual), segment_labels, video_labels)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return {"compute_ms_per_video": 1e3 * (time.perf_counter() - started) / (steps * batch),
            "threads": torch.get_num_threads()}


def _child(args) -> None:
    if args.child == "open":
        result = run_open(args.cache, args.n)
    elif args.child == "epoch":
        result = run_epoch(args.cache, args.n, args.batch_size)
    else:
        result = run_step(args.segments, args.batch_size)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def _spawn(kind: str, args, cache: Path | None = None, videos: int = 0) -> dict:
    command = [sys.executable, __file__, "--child", kind, "--segments", str(args.segments),
               "--batch-size", str(args.batch_size), "--n", str(videos)]
    if cache:
        command += ["--cache", str(cache)]
    out = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", default="10000,100000", help="cache sizes (comma-separated)")
    parser.add_argument("--segments", type=int, default=2, help="segments per video (AVE/VGGSound: 10)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "avepipe_vggsound_scale")
    parser.add_argument("--only-write", action="store_true", help="write the caches and stop")
    parser.add_argument("--keep", action="store_true", help="keep the caches (default: delete them at the end)")
    parser.add_argument("--child", choices=["open", "epoch", "step"], help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    sizes = [int(v) for v in args.videos.split(",")]
    args.dir.mkdir(parents=True, exist_ok=True)
    results = {}
    for videos in sizes:
        cache = args.dir / f"n{videos}" / "features.h5"
        cache.parent.mkdir(exist_ok=True)
        written = write_cache(cache, videos, args.segments)
        if args.only_write:
            print(json.dumps({"videos": videos, "write": written}), flush=True)
            continue
        result = {"benchmark": "vggsound_scale", "videos": videos, "segments": args.segments, "dtype": "float16",
                  "write": written, **_spawn("open", args, cache, videos)}
        result["open_peak_rss_mb"] = result.pop("peak_rss_mb")
        result.update(_spawn("epoch", args, cache, videos))
        results[videos] = result
        print(json.dumps(result), flush=True)
    if args.only_write:
        return
    step = _spawn("step", args)
    small, large = results[min(sizes)], results[max(sizes)]
    print(json.dumps({
        "benchmark": "vggsound_scale_summary", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        **cpu_description(), "load_avg_1min": os.getloadavg()[0], "segments": args.segments,
        "batch_size": args.batch_size, "psp_compute": step,
        "read_ms_per_video_ratio": large["read_ms_per_video"] / small["read_ms_per_video"],
        "peak_rss_ratio": large["peak_rss_mb"] / small["peak_rss_mb"],
        "open_largest_s": large["open_dataset_s"],
        "read_over_compute_per_epoch": {str(v): r["read_ms_per_video"] / step["compute_ms_per_video"]
                                        for v, r in results.items()},
    }), flush=True)
    if not args.keep:
        shutil.rmtree(args.dir)


if __name__ == "__main__":
    main()
