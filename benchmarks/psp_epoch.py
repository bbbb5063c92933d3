"""One fully supervised PSP training epoch: avepipe's ``Trainer`` vs the PSP authors' own loop, side by side.

The authors' loop (jasongief/PSP_CVPR_2021 @ ddd20f3, ``fully_supervised_main.py:53-94`` with
``dataloader.py:76-95``) is re-created here: the whole feature set held in memory as loaded
from HDF5, ``random.shuffle`` of the training indices, ``len // batch`` batches (the last
partial one dropped), each batch copied video by video into preallocated float32 buffers, the
per-video segment labels and AVPS targets made in Python, ``zero_grad``, forward, loss,
backward, Adam step, and the losses read back to the host at every step. Both loops train the
same avepipe PSP module on the same AVE-sized stand-in cache (4,143 videos, float16 storage to
keep the disk and memory small; the authors' arrays are the very arrays avepipe loaded), with
the same batch size and torch threads. Each loop runs one untimed epoch, then timed epochs
alternate (ours, authors', ours, ...); the figure is the median epoch time of the authors'
loop over ours. Prints one JSON line. Not run by the tests.

    OMP_NUM_THREADS=1 python benchmarks/psp_epoch.py [--rounds 3] [--train-videos 3339] [--cache PATH]
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._machine import machine  # noqa: E402
from benchmarks.train_throughput import (CLASSES, T, TRAIN_VIDEOS, VIDEOS, write_annotations,  # noqa: E402
                                         write_synthetic_cache)


class AuthorsLoop:
    """The authors' fully supervised epoch over in-memory arrays (``audio``/``visual`` as stored)."""

    def __init__(self, net, audio: np.ndarray, visual: np.ndarray, segment_labels: np.ndarray,
                 video_labels: np.ndarray, train_ids: list[int], batch: int):
        self.net, self.audio, self.visual, self.batch = net, audio, visual, batch
        self.video_labels = torch.from_numpy(video_labels)
        self.one_hot = np.eye(CLASSES + 1, dtype=np.float32)[segment_labels]       # [N, T, C+1] as labels.h5
        self.order = list(train_ids)
        self.optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        self.visual_batch = np.zeros((batch, *visual.shape[1:]), np.float32)
        self.audio_batch = np.zeros((batch, *audio.shape[1:]), np.float32)
        self.label_batch = np.zeros((batch, T, CLASSES + 1), np.float32)
        self.segment_batch = np.zeros((batch, T), np.float32)
        self.avps_batch = np.zeros((batch, T), np.float32)

    def _get_batch(self, i: int) -> list[int]:
        chosen = self.order[i * self.batch:(i + 1) * self.batch]
        for row, item in enumerate(chosen):         # one video at a time, as dataloader.py:81-86
            self.visual_batch[row] = self.visual[item]
            self.audio_batch[row] = self.audio[item]
            self.label_batch[row] = self.one_hot[item]
        for row in range(self.batch):               # AVPS targets and segment labels, dataloader.py:52-69
            present = np.sum(self.label_batch[row].T, axis=1).nonzero()[0]
            same = self.label_batch[row, :, present[0]].nonzero()[0]
            if len(same):
                self.avps_batch[row, same] = 1 / len(same)
            segments, classes = np.where(self.label_batch[row] == 1)
            self.segment_batch[row, segments] = classes
        return chosen

    def epoch(self) -> None:
        self.net.train()
        random.shuffle(self.order)
        for i in range(len(self.order) // self.batch):
            chosen = self._get_batch(i)
            audio, visual = torch.from_numpy(self.audio_batch).float(), torch.from_numpy(self.visual_batch).float()
            segments = torch.from_numpy(self.segment_batch).long()
            self.net.zero_grad()
            out = self.net(audio, visual)
            losses = self.net.compute_loss(out, segments, self.video_labels[chosen])
            _ = {k: v.detach().cpu().numpy() for k, v in losses.items()}     # read every step
            losses["loss"].backward()
            self.optimizer.step()


def _timed(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "avepipe_bench_ave.h5",
                        help="stand-in cache (written once, reused)")
    parser.add_argument("--rounds", type=int, default=3, help="timed epochs of each loop, alternating")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of both loops")
    parser.add_argument("--train-videos", type=int, default=TRAIN_VIDEOS,
                        help="videos per epoch (default: AVE's training split); fewer times part of an epoch "
                             "over the same in-memory set of 4,143 videos")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    write_synthetic_cache(args.cache, VIDEOS, "float16")
    annotations = args.cache.with_suffix(".annotations.txt")
    write_annotations(annotations, VIDEOS)

    from torch.utils.data import Subset

    from avepipe.data.annotations import load_annotations
    from avepipe.data.dataset import FeatureDataset
    from avepipe.extract.provenance import ExtractorConfig
    from avepipe.models import build_model
    from avepipe.training import Trainer, defaults_for, seed_everything

    labels = load_annotations(annotations)
    dataset = FeatureDataset([args.cache], labels, labels.video_ids, in_memory=True)
    train = Subset(dataset, range(args.train_videos))
    seed_everything(0)
    config = defaults_for("psp", "fully", epochs=1000, batch_size=args.batch_size)
    trainer = Trainer(build_model("psp", "fully", num_classes=CLASSES), config, train, train, tempfile.mkdtemp(),
                      labels.classes, ExtractorConfig(segments=T), device="cpu", progress=False)
    random.seed(123)
    authors = AuthorsLoop(build_model("psp", "fully", num_classes=CLASSES), dataset._audio, dataset._visual,
                          dataset.segment_labels, dataset.video_labels(np.arange(len(dataset))),
                          list(range(args.train_videos)), args.batch_size)
    epochs = iter(range(1, 1000))
    ours_s, authors_s = [], []
    _timed(lambda: trainer._train_epoch(next(epochs)))        # untimed warm-up of each
    _timed(authors.epoch)
    for _ in range(args.rounds):
        ours_s.append(_timed(lambda: trainer._train_epoch(next(epochs))))
        authors_s.append(_timed(authors.epoch))
    ours, theirs = statistics.median(ours_s), statistics.median(authors_s)
    print(json.dumps({
        "benchmark": "psp_epoch", "date": time.strftime("%Y-%m-%d"), "machine": machine(),
        "videos": VIDEOS, "train_videos": args.train_videos, "cache_dtype": "float16", "batch_size": args.batch_size,
        "threads": args.threads, "rounds": args.rounds, "ours_epoch_s": ours_s, "authors_epoch_s": authors_s,
        "ours_median_s": ours, "authors_median_s": theirs, "speed_ours_over_authors": theirs / ours,
        "load_avg_after": list(__import__("os").getloadavg()),
    }))


if __name__ == "__main__":
    main()
