"""One fully supervised PSP epoch: avepipe's ``Trainer`` vs the PSP authors' own loop, side by side.

The authors' loop (jasongief/PSP_CVPR_2021 @ ddd20f3) is re-created around the SAME avepipe PSP
module, batch size and torch threads, with both of its parts:

* the training pass (``fully_supervised_main.py:53-94`` with ``dataloader.py:76-95``): ``random.shuffle``
  of the training indices, ``len // batch`` batches (the last partial one dropped), each batch copied
  video by video into preallocated float32 buffers, the per-video segment labels and AVPS targets made
  in Python, ``zero_grad``, forward, loss, backward, Adam step, the losses read back at every step;
* the evaluation cadence (``fully_supervised_main.py:118-131`` and ``134-185``): every 5th epoch
  ``val()`` and ``test()``, EACH building a new ``AVE_Fully_Dataset`` that reads ``audio_feature.h5``,
  ``right_labels.h5`` and the whole ``visual_feature.h5`` from disk (``dataloader.py:27-36``), copying
  the split's 402 videos into one batch and running one forward with autograd on (their code has no
  ``no_grad``), then ``compute_acc`` (``measure.py:8-27``). For this the stand-in is also written in
  their file format (float32 ``avadataset`` datasets, ``order`` lists; 4.2 GB for the visual file,
  written once next to the cache and reused).

avepipe's side is one epoch of ``Trainer.fit`` as a user runs it: the training pass, validation on
the 402 validation videos (every epoch: avepipe selects on validation), the ``best``/``last``
checkpoints, ``metrics.csv`` and ``curves.png``.

Two figures, each the authors' median over ours: the training pass alone, and the full epoch cycle
(ours: the whole fit epoch; the authors': training pass + (val + test) / 5). Each side runs in its own
process, as each would for a user: avepipe's with what ``Trainer.fit`` sets up (it keeps freed memory
for the next step: avepipe/run/allocator.py), the authors' with the C library's defaults. Both train
from the stand-in held in memory as float16 (the authors hold float32: their per-video copy here also
converts, a few per cent of a step; float32 would take their process past 5 GB). Their evaluation reads
the whole visual file as they do, but in 128-video slabs into one reused buffer instead of one 4.2 GB
array; that skips their 4.2 GB allocation, which favours the authors' loop. With ``--train-videos``
below 3,339 an epoch is part of the training split while the evaluation stays whole, so the JSON also
gives the full-epoch cycle projected from the measured training time per video. Each side runs one
untimed round, then timed rounds alternate (ours, authors'), one process idle while the other runs.
Wall and process CPU seconds are both kept (CPU time is steadier on a shared machine), and each
process's peak RSS. ``--precision bf16`` trains avepipe's side as ``avepipe train --precision bf16``
(bf16 autocast) against the authors' fp32 loop: another computation, reported as such. Prints one
JSON line; not run by the tests.

    OMP_NUM_THREADS=1 python benchmarks/psp_epoch.py [--rounds 3] [--train-videos 3339] [--cache PATH]
        [--precision bf16]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avepipe.event.precision import TRAIN_PRECISIONS  # noqa: E402
from benchmarks._child import peak_rss_mb  # noqa: E402
from benchmarks._machine import machine  # noqa: E402
from benchmarks.train_throughput import (CLASSES, T, TRAIN_VIDEOS, VAL_VIDEOS, VIDEOS, write_annotations,  # noqa: E402
                                         write_synthetic_cache)

EVAL_EVERY = 5      # the authors' save_epoch and check_epoch
SLAB = 128          # videos per read of their visual file


def segment_wise_relation(label_batch: np.ndarray, avps: np.ndarray, segments: np.ndarray) -> None:
    """AVPS targets and segment classes from one-hot labels, video by video (dataloader.py:52-69)."""
    for row in range(len(label_batch)):
        present = np.sum(label_batch[row].T, axis=1).nonzero()[0]
        same = label_batch[row, :, present[0]].nonzero()[0]
        if len(same):
            avps[row, same] = 1 / len(same)
        rows, classes = np.where(label_batch[row] == 1)
        segments[row, rows] = classes


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
        segment_wise_relation(self.label_batch, self.avps_batch, self.segment_batch)
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


def write_authors_files(folder: Path, audio: np.ndarray, visual: np.ndarray, segment_labels: np.ndarray) -> None:
    """The stand-in in the authors' format: float32 ``avadataset`` features and one-hot labels, ``order``
    lists of the validation and test videos (the 402 after the training split, then the next 402)."""
    done = folder / "complete"
    if done.exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    with h5py.File(folder / "visual_feature.h5", "w") as hf:
        data = hf.create_dataset("avadataset", visual.shape, np.float32)
        for start in range(0, len(visual), SLAB):
            data[start:start + SLAB] = visual[start:start + SLAB].astype(np.float32)
    for name, array in (("audio_feature.h5", audio.astype(np.float32)),
                        ("right_labels.h5", np.eye(CLASSES + 1, dtype=np.float32)[segment_labels])):
        with h5py.File(folder / name, "w") as hf:
            hf["avadataset"] = array
    for name, first in (("val_order.h5", TRAIN_VIDEOS), ("test_order.h5", TRAIN_VIDEOS + VAL_VIDEOS)):
        with h5py.File(folder / name, "w") as hf:
            hf["order"] = np.arange(first, first + VAL_VIDEOS)
    done.touch()


class AuthorsEvaluation:
    """``val()`` or ``test()`` of the authors: a new dataset read from their files, one batch, one forward."""

    def __init__(self, net, folder: Path, order_file: str):
        self.net, self.folder, self.order_file = net, folder, order_file

    def _read_visual(self, order: list[int]) -> np.ndarray:
        """Their ``video_features = hf['avadataset'][:]`` then the batch copy; read here slab by slab."""
        batch = np.zeros((len(order), T, 7, 7, 512), np.float32)
        wanted = {video: row for row, video in enumerate(order)}
        with h5py.File(self.folder / "visual_feature.h5", "r") as hf:
            data = hf["avadataset"]
            slab = np.empty((SLAB, *data.shape[1:]), np.float32)
            for start in range(0, len(data), SLAB):
                stop = min(start + SLAB, len(data))
                data.read_direct(slab, np.s_[start:stop], np.s_[0:stop - start])
                for video in range(start, stop):
                    if video in wanted:
                        batch[wanted[video]] = slab[video - start]
        return batch

    def __call__(self) -> float:
        with h5py.File(self.folder / "audio_feature.h5", "r") as hf:
            audio = hf["avadataset"][:]
        with h5py.File(self.folder / "right_labels.h5", "r") as hf:
            labels = hf["avadataset"][:]
        with h5py.File(self.folder / self.order_file, "r") as hf:
            order = hf["order"][:].tolist()
        visual_batch = self._read_visual(order)
        audio_batch = np.zeros((len(order), *audio.shape[1:]), np.float32)
        label_batch = np.zeros((len(order), *labels.shape[1:]), np.float32)
        for row, video in enumerate(order):
            audio_batch[row], label_batch[row] = audio[video], labels[video]
        segment_wise_relation(label_batch, *np.zeros((2, len(order), T), np.float32))
        self.net.eval()
        logits = self.net(torch.from_numpy(audio_batch), torch.from_numpy(visual_batch)).logits
        scores = logits.cpu().data.numpy()
        hits = [np.argmax(scores[i, j]) == np.argmax(label_batch[i, j])      # compute_acc, one segment at a time
                for i in range(len(order)) for j in range(scores.shape[1])]
        return float(np.mean(hits))


def _timed(run) -> tuple[float, float]:
    """Wall and process CPU seconds of ``run()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


class OursEpoch:
    """One more epoch of ``Trainer.fit`` (train, validate, checkpoints, logs), its training pass timed apart."""

    def __init__(self, trainer):
        self.trainer, self.train_pass = trainer, (0.0, 0.0)
        train_epoch = trainer.train_epoch

        def timed_train_epoch(epoch: int) -> dict:
            row = {}
            self.train_pass = _timed(lambda: row.update(train_epoch(epoch)))
            return row
        trainer.train_epoch = timed_train_epoch

    def __call__(self) -> None:
        self.trainer.epochs = self.trainer.epoch + 1
        self.trainer.fit()


def _median(values: list[tuple[float, float]], which: int) -> float:
    return statistics.median(v[which] for v in values)


def _summary(ours_train, ours_cycle, authors_train, authors_eval, train_videos: int, batch: int) -> dict:
    """Medians and ratios (authors' over ours: above 1 means avepipe is faster), wall [0] and CPU [1]."""
    out = {}
    for which, clock in enumerate(("wall", "cpu")):
        o_train, o_cycle = _median(ours_train, which), _median(ours_cycle, which)
        a_train, a_eval = _median(authors_train, which), _median(authors_eval, which)
        a_cycle = a_train + a_eval / EVAL_EVERY
        # Full 3,339-video epoch: training time per video trained, plus the same per-epoch rest.
        ours_full = o_train / train_videos * TRAIN_VIDEOS + (o_cycle - o_train)
        authors_full = (a_train / (train_videos // batch * batch) * (TRAIN_VIDEOS // batch * batch)
                        + a_eval / EVAL_EVERY)
        out[clock] = {"ours_train_s": o_train, "ours_cycle_s": o_cycle, "authors_train_s": a_train,
                      "authors_eval_pair_s": a_eval, "authors_cycle_s": a_cycle,
                      "speed_train_pass": a_train / o_train, "speed_epoch_cycle": a_cycle / o_cycle,
                      "projected_full_epoch": {"ours_s": ours_full, "authors_s": authors_full,
                                               "speed_epoch_cycle": authors_full / ours_full}}
    return out


def _dataset(args):
    """The stand-in (written if missing, else only read), held in memory, and its annotations."""
    annotations = args.cache.with_suffix(".annotations.txt")
    if not (args.cache.exists() and annotations.exists()):
        write_synthetic_cache(args.cache, VIDEOS, "float16")
        write_annotations(annotations, VIDEOS)
    from avepipe.data.annotations import load_annotations
    from avepipe.data.dataset import FeatureDataset

    labels = load_annotations(annotations)
    return FeatureDataset([args.cache], labels, labels.video_ids, in_memory=True), labels


def _ours_round(args):
    """avepipe's side: a ``Trainer`` over the in-memory stand-in; each round one ``fit`` epoch."""
    from torch.utils.data import Subset

    from avepipe.event.training import Trainer, defaults_for
    from avepipe.extract.provenance import ExtractorConfig
    from avepipe.models import build_model
    from avepipe.run.seeding import seed_everything

    dataset, labels = _dataset(args)
    seed_everything(0)
    config = defaults_for("psp", "fully", epochs=1, batch_size=args.batch_size, precision=args.precision)
    trainer = Trainer(build_model("psp", "fully", num_classes=CLASSES), config, Subset(dataset, range(args.train_videos)),
                      Subset(dataset, range(TRAIN_VIDEOS, TRAIN_VIDEOS + VAL_VIDEOS)), tempfile.mkdtemp(),
                      labels.classes, ExtractorConfig(segments=T), device="cpu", progress=False)
    ours = OursEpoch(trainer)

    def one_round() -> dict:
        cycle = _timed(ours)
        return {"train": ours.train_pass, "cycle": cycle}
    return one_round


def _authors_round(args):
    """The authors' side: their training pass, then their val() + test() pair (from their HDF5 files)."""
    from avepipe.models import build_model

    dataset, _ = _dataset(args)
    folder = args.authors_dir or args.cache.with_name(args.cache.stem + "_authors_format")
    write_authors_files(folder, dataset._audio, dataset._visual, dataset.segment_labels)
    random.seed(123)
    net = build_model("psp", "fully", num_classes=CLASSES)
    authors = AuthorsLoop(net, dataset._audio, dataset._visual, dataset.segment_labels,
                          dataset.video_labels(np.arange(len(dataset))), list(range(args.train_videos)),
                          args.batch_size)
    val_test = [AuthorsEvaluation(net, folder, name) for name in ("val_order.h5", "test_order.h5")]

    def one_round() -> dict:
        return {"train": _timed(authors.epoch), "eval_pair": _timed(lambda: [evaluate() for evaluate in val_test])}
    return one_round


def child(args) -> None:
    """One side in its own process (its own allocator settings and peak memory): a round per line on stdin."""
    torch.set_num_threads(args.threads)
    one_round = {"ours": _ours_round, "authors": _authors_round}[args.child](args)
    print(json.dumps({"ready": True}), flush=True)
    for _ in sys.stdin:
        print(json.dumps({**one_round(), "peak_rss_mb": peak_rss_mb()}), flush=True)


def _ask(process: subprocess.Popen) -> dict:
    """The child's next JSON line (its other output goes to stderr)."""
    if process.stdin is not None and process.poll() is None:
        process.stdin.write("go\n")
        process.stdin.flush()
    line = process.stdout.readline()
    if not line:
        raise SystemExit(f"psp_epoch: the child {process.args[3]} ended early (exit {process.wait()})")
    return json.loads(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "avepipe_bench_ave.h5",
                        help="stand-in cache (written once if missing, else only read)")
    parser.add_argument("--authors-dir", type=Path, default=None,
                        help="the stand-in in the authors' HDF5 format (default: next to the cache; written once)")
    parser.add_argument("--rounds", type=int, default=3, help="timed epochs of each loop, alternating")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of both loops")
    parser.add_argument("--precision", choices=TRAIN_PRECISIONS, default="fp32",
                        help="avepipe's training arithmetic (`avepipe train --precision`); the authors' loop is fp32")
    parser.add_argument("--train-videos", type=int, default=TRAIN_VIDEOS,
                        help="videos per training pass (default: AVE's training split); fewer times part of an "
                             "epoch (the evaluation stays whole: see projected_full_epoch)")
    parser.add_argument("--child", choices=("ours", "authors"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    children = {name: subprocess.Popen([sys.executable, __file__, "--child", name, *sys.argv[1:]], text=True,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE) for name in ("ours", "authors")}
    for process in children.values():       # both set up (load, write the authors' files) before any round
        process.stdout.readline()
    rounds = {name: [] for name in children}
    for round_ in range(args.rounds + 1):   # round 0: untimed warm-up of each
        for name, process in children.items():
            result = _ask(process)
            if round_:
                rounds[name].append(result)
    for process in children.values():
        process.stdin.close()
        process.wait()
    ours, authors = rounds["ours"], rounds["authors"]
    timings = {"ours_train": [r["train"] for r in ours], "ours_cycle": [r["cycle"] for r in ours],
               "authors_train": [r["train"] for r in authors], "authors_eval_pair": [r["eval_pair"] for r in authors]}
    print(json.dumps({
        "benchmark": "psp_epoch", "date": time.strftime("%Y-%m-%d"), "machine": machine(),
        "videos": VIDEOS, "train_videos": args.train_videos, "val_videos": VAL_VIDEOS, "cache_dtype": "float16",
        "batch_size": args.batch_size, "threads": args.threads, "precision": args.precision, "rounds": args.rounds,
        "eval_every": EVAL_EVERY,
        "command": " ".join(["python", *sys.argv]), "wall_and_cpu_s": timings,
        **_summary(*timings.values(), args.train_videos, args.batch_size),
        "peak_rss_mb": {"ours": max(r["peak_rss_mb"] for r in ours),
                        "authors": max(r["peak_rss_mb"] for r in authors)},
        "load_avg_after": list(os.getloadavg()),
    }))


if __name__ == "__main__":
    main()
