"""Training throughput and peak memory: avepipe's loop vs a straightforward reference loop.

Writes (or reuses) an AVE-sized cache of synthetic features (4,143 videos x 10
segments, real dimensions), then runs, each in its own child process so peak RSS
is measured separately (the child's own ``VmHWM``, benchmarks/_child.py):

- ``ours``: ``FeatureDataset`` (auto in-memory/streaming) + ``Trainer`` with the
  published fully-PSP settings, for ``--steps`` batches;
- ``reference``: the features loaded into plain float32 tensors, manual shuffled
  batching, the same model, loss and optimiser - what a research script does.

Prints one JSON line: segments/s and peak RSS of both, their ratios, and the
projected wall time of the published 300-epoch schedule (3,339 training and 402
validation videos per epoch) on this machine. Not run by the tests.

    python benchmarks/train_throughput.py [--cache /tmp/ave_bench.h5] [--steps 4]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._child import peak_rss_mb, run_child  # noqa: E402
from benchmarks._machine import machine  # noqa: E402

T, VIDEOS, TRAIN_VIDEOS, VAL_VIDEOS, CLASSES = 10, 4143, 3339, 402, 28


def write_synthetic_cache(path: Path, videos: int, dtype: str) -> None:
    from avepipe.data.cache import CacheWriter
    from avepipe.extract.features import VideoFeatures
    from avepipe.extract.provenance import ExtractorConfig
    from tqdm import tqdm

    rng = np.random.default_rng(0)
    with CacheWriter(path, ExtractorConfig(segments=T), dtype=dtype) as writer:
        done = writer.done_ids
        todo = [i for i in range(videos) if f"v{i:05d}" not in done]
        for i in tqdm(todo, desc="writing synthetic cache", unit="video"):
            visual = rng.random((T, 7, 7, 512), dtype=np.float32)
            audio = rng.random((T, 128), dtype=np.float32)
            writer.write(VideoFeatures(f"v{i:05d}", visual, audio, float(T), 16.0, True))


def write_annotations(path: Path, videos: int) -> None:
    rng = np.random.default_rng(1)
    lines = []
    for i in range(videos):
        start = int(rng.integers(0, 8))
        lines.append(f"class {i % CLASSES}&v{i:05d}&good&{start}&{int(rng.integers(start + 1, 11))}")
    path.write_text("\n".join(lines) + "\n")


def _ids(videos: int) -> list[str]:
    return [f"v{i:05d}" for i in range(videos)]


def run_ours(cache: Path, annotations: Path, steps: int, batch: int) -> dict:
    import torch
    from torch.utils.data import Subset

    from avepipe.event.training import Trainer, defaults_for
    from avepipe.run.seeding import seed_everything
    from avepipe.data.annotations import load_annotations
    from avepipe.data.dataset import FeatureDataset
    from avepipe.extract.provenance import ExtractorConfig
    from avepipe.models import build_model

    labels = load_annotations(annotations)
    started = time.perf_counter()
    dataset = FeatureDataset([cache], labels, labels.video_ids)
    load_s = time.perf_counter() - started
    seed_everything(0)
    config = defaults_for("psp", "fully", epochs=2, batch_size=batch)     # a warm-up epoch, then the timed one
    net = build_model("psp", "fully", num_classes=CLASSES)
    train = Subset(dataset, range(steps * batch))
    val = Subset(dataset, range(len(dataset) - batch, len(dataset)))
    trainer = Trainer(net, config, train, val, tempfile.mkdtemp(), labels.classes, ExtractorConfig(segments=T))
    train_s = _timed_epoch(trainer)
    started = time.perf_counter()
    from avepipe.event.training import predict_dataset
    predict_dataset(trainer.net, val, batch, trainer.device)
    val_s = time.perf_counter() - started
    return {"in_memory": dataset.in_memory, "load_s": load_s, "train_segments_per_s": steps * batch * T / train_s,
            "val_segments_per_s": batch * T / val_s, "threads": torch.get_num_threads()}


def _timed_epoch(trainer) -> float:
    trainer.train_epoch(1)            # warm-up pass (allocator, oneDNN kernels), not timed
    started = time.perf_counter()
    trainer.train_epoch(2)
    return time.perf_counter() - started


def run_reference(cache: Path, annotations: Path, steps: int, batch: int) -> dict:
    import torch

    from avepipe.data.annotations import load_annotations
    from avepipe.data.cache import FeatureCache
    from avepipe.models import build_model

    labels = load_annotations(annotations)
    features = FeatureCache(cache)
    started = time.perf_counter()
    ids = _ids(VIDEOS)             # the whole set in float32, as research scripts hold it
    visual = torch.empty((len(ids), T, 7, 7, 512))
    audio = torch.empty((len(ids), T, 128))
    for n, video_id in enumerate(ids):
        v, a = features.read_arrays(video_id, ("visual", "audio"))
        visual[n], audio[n] = torch.from_numpy(v), torch.from_numpy(a)
    load_s = time.perf_counter() - started
    segment_labels = torch.from_numpy(labels.segment_label_matrix(ids, T))
    video_labels = torch.from_numpy(labels.video_label_matrix(ids))
    torch.manual_seed(0)
    net = build_model("psp", "fully", num_classes=CLASSES)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)

    def epoch():
        net.train()
        order = torch.randperm(len(ids))
        for s in range(steps):
            idx = order[s * batch:(s + 1) * batch]
            out = net(audio[idx], visual[idx])
            loss = net.compute_loss(out, segment_labels[idx], video_labels[idx])["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    epoch()
    started = time.perf_counter()
    epoch()
    return {"load_s": load_s, "train_segments_per_s": steps * batch * T / (time.perf_counter() - started)}


def child(kind: str, args) -> None:
    result = (run_ours if kind == "ours" else run_reference)(args.cache, args.annotations, args.steps, args.batch_size)
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "avepipe_bench_ave.h5",
                        help="synthetic cache (written once, reused)")
    parser.add_argument("--dtype", default="float16", help="storage dtype of the synthetic cache")
    parser.add_argument("--steps", type=int, default=4, help="timed batches per loop")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--child", choices=["ours", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--annotations", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args)
        return
    write_synthetic_cache(args.cache, VIDEOS, args.dtype)
    args.annotations = args.cache.with_suffix(".annotations.txt")
    write_annotations(args.annotations, VIDEOS)
    results = {}
    for kind in ("ours", "reference"):
        results[kind] = run_child(__file__, ["--child", kind, "--cache", str(args.cache), "--annotations",
                                             str(args.annotations), "--steps", str(args.steps),
                                             "--batch-size", str(args.batch_size)])
    ours, ref = results["ours"], results["reference"]
    epoch_s = TRAIN_VIDEOS * T / ours["train_segments_per_s"] + VAL_VIDEOS * T / ours["val_segments_per_s"]
    print(json.dumps({
        "benchmark": "train_throughput", "videos": VIDEOS, "segments": VIDEOS * T, "cache_dtype": args.dtype,
        "batch_size": args.batch_size, "timed_steps": args.steps, "machine": machine(),
        "ours": ours, "reference": ref,
        "throughput_ratio_ours_over_reference": ours["train_segments_per_s"] / ref["train_segments_per_s"],
        "peak_rss_ratio_ours_over_reference": ours["peak_rss_mb"] / ref["peak_rss_mb"],
        "projected_300_epochs_hours": 300 * epoch_s / 3600,
    }))


if __name__ == "__main__":
    main()
