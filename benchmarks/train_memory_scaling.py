"""Streaming training at scale: peak RSS over caches of 1,000 and 10,000 videos, loader vs step throughput.

Writes (once; reruns reuse them) float16 caches of synthetic features with the real
dimensions (T=10 segments of [7,7,512] + [128]), then, each in a fresh child process:

- ``train``: ``FeatureDataset(in_memory=False)`` over the WHOLE cache + ``Trainer``
  (fully PSP, published settings, batch 128) for ``--steps`` optimisation steps on
  the first videos of a shuffled order (``--steps 0``: a full epoch over every
  video). The dataset, cache index, labels and order cover all N videos, so what
  grows with N is visible in the peak RSS (the child's own ``VmHWM``, benchmarks/_child.py).
- ``loader``: read throughput of the streaming loader alone (segments/s, DataLoader
  batches of 128 with 0 and 2 worker processes; the page cache is warm since the
  caches were just written or reused, so this is the HDF5 + decode + collate cost,
  not the disk).
- ``step``: segments/s a PSP training step consumes on this CPU (forward, backward,
  Adam on in-memory tensors), i.e. the rate the loader must sustain.

Prints one JSON line. Not run by the tests.

    python benchmarks/train_memory_scaling.py [--videos 1000,10000] [--steps 20] [--dir /tmp/avepipe_bench_mem]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._child import peak_rss_mb, run_child  # noqa: E402
from benchmarks._machine import machine  # noqa: E402
from benchmarks.train_throughput import CLASSES, T, write_annotations, write_synthetic_cache  # noqa: E402


def _dataset(cache: Path, annotations: Path):
    from avepipe.data.annotations import load_annotations
    from avepipe.data.dataset import FeatureDataset

    labels = load_annotations(annotations)
    return labels, FeatureDataset([cache], labels, labels.video_ids, in_memory=False)


def run_train(cache: Path, annotations: Path, steps: int, batch: int) -> dict:
    import torch
    from torch.utils.data import Subset

    from avepipe.event.training import Trainer, defaults_for
    from avepipe.run.seeding import seed_everything
    from avepipe.extract.provenance import ExtractorConfig
    from avepipe.models import build_model

    labels, dataset = _dataset(cache, annotations)
    seed_everything(0)
    config = defaults_for("psp", "fully", epochs=1, batch_size=batch)
    net = build_model("psp", "fully", num_classes=CLASSES)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0)).tolist()
    train = dataset if steps == 0 else Subset(dataset, order[:steps * batch])
    val = Subset(dataset, order[-batch:])
    trainer = Trainer(net, config, train, val, tempfile.mkdtemp(), labels.classes, ExtractorConfig(segments=T),
                      device="cpu", progress=False)
    started = time.perf_counter()
    trainer.fit()
    return {"videos": len(dataset), "trained_videos": len(train), "in_memory": dataset.in_memory,
            "seconds": time.perf_counter() - started}


def run_loader(cache: Path, annotations: Path, steps: int, batch: int) -> dict:
    import torch
    from torch.utils.data import DataLoader, RandomSampler

    from avepipe.data.dataset import already_batched

    _, dataset = _dataset(cache, annotations)
    rates = {}
    for workers in (0, 2):
        loader = DataLoader(dataset, batch_size=batch, collate_fn=already_batched, num_workers=workers,
                            sampler=RandomSampler(dataset, generator=torch.Generator().manual_seed(workers)))
        batches = iter(loader)
        next(batches)                      # worker start-up is not read throughput
        started, segments = time.perf_counter(), 0
        for _ in range(steps):
            segments += next(batches)["audio"].shape[0] * T
        rates[f"workers_{workers}"] = segments / (time.perf_counter() - started)
        del batches
    return {"read_segments_per_s": rates}


def run_step(steps: int, batch: int, segments: int = T, classes: int = CLASSES) -> dict:
    import torch

    from avepipe.models import build_model

    torch.manual_seed(0)
    net = build_model("psp", "fully", num_classes=classes)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    audio, visual = torch.randn(batch, segments, 128), torch.rand(batch, segments, 7, 7, 512)
    segment_labels = torch.randint(0, classes + 1, (batch, segments))
    video_labels = torch.zeros(batch, classes + 1)

    def step():
        loss = net.compute_loss(net(audio, visual), segment_labels, video_labels)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    return {"step_segments_per_s": steps * batch * segments / (time.perf_counter() - started),
            "step_cpu_s_per_segment": (time.process_time() - cpu) / (steps * batch * segments),
            "threads": torch.get_num_threads()}


def _child(kind: str, args) -> None:
    if kind == "train":
        result = run_train(args.cache, args.annotations, args.steps, args.batch_size)
    elif kind == "loader":
        result = run_loader(args.cache, args.annotations, args.steps, args.batch_size)
    else:
        result = run_step(max(3, args.steps // 4), args.batch_size)
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def _spawn(kind: str, args, cache: Path | None = None, annotations: Path | None = None) -> dict:
    arguments = ["--child", kind, "--steps", str(args.steps), "--batch-size", str(args.batch_size)]
    if cache:
        arguments += ["--cache", str(cache), "--annotations", str(annotations)]
    return run_child(__file__, arguments)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", default="1000,10000", help="cache sizes (comma-separated)")
    parser.add_argument("--steps", type=int, default=20, help="training steps per run (0: one full epoch)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "avepipe_bench_mem",
                        help="where the synthetic caches are written once and reused")
    parser.add_argument("--child", choices=["train", "loader", "step"], help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--annotations", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args)
        return
    sizes = [int(v) for v in args.videos.split(",")]
    args.dir.mkdir(parents=True, exist_ok=True)
    runs, write_s = {}, {}
    for videos in sizes:
        cache, annotations = args.dir / f"synthetic_{videos}.h5", args.dir / f"synthetic_{videos}.annotations.txt"
        started = time.perf_counter()
        write_synthetic_cache(cache, videos, "float16")
        write_annotations(annotations, videos)
        write_s[videos] = time.perf_counter() - started
        runs[videos] = _spawn("train", args, cache, annotations)
    largest = max(sizes)
    loader = _spawn("loader", args, args.dir / f"synthetic_{largest}.h5",
                    args.dir / f"synthetic_{largest}.annotations.txt")
    step = _spawn("step", args)
    best_read = max(loader["read_segments_per_s"].values())
    print(json.dumps({
        "benchmark": "train_memory_scaling", "cache_dtype": "float16", "segments_per_video": T,
        "batch_size": args.batch_size, "steps": args.steps or "full epoch", "machine": machine(),
        "cache_write_s": write_s,
        "train": {str(v): r for v, r in runs.items()},
        "peak_rss_ratio_largest_over_smallest": runs[largest]["peak_rss_mb"] / runs[min(sizes)]["peak_rss_mb"],
        "loader": loader, "cpu_step": step,
        "loader_over_cpu_step": best_read / step["step_segments_per_s"],
        "gpu_batches_per_s_the_loader_feeds": best_read / (args.batch_size * T),
        "gpu_step_rate": "not measured (no GPU here)",
    }))


if __name__ == "__main__":
    main()
