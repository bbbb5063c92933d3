"""torchrun training on 2 CPU processes takes exactly the steps of one process at the same global batch."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from avepipe.distributed import split_global_batches
from tests._distributed_helpers import avepipe, labelled_cache, run, torchrun

VIDEOS = 27     # random split 0.8/0.1/0.1 (seed 4) -> 21 train videos, 3 val


def test_global_batches_are_split_disjointly_and_completely():
    order = [7, 3, 9, 0, 5, 1, 8, 2, 6, 4, 10]
    for world in (1, 2, 3):
        plans = [split_global_batches(order, 4, rank, world) for rank in range(world)]
        assert len({len(p) for p in plans}) == 1            # every rank takes the same number of steps
        for step, start in enumerate(range(0, len(order), 4)):
            parts = [p[step] for p in plans]
            joined = [i for part in parts for i in part.indices[:part.real]]
            assert joined == order[start:start + 4]          # the ranks' chunks are the global batch, in order
            assert sum(part.share for part in parts) == pytest.approx(1.0)
    # Global batch of 3 (the last) on 3 ranks: one each. Of 1 video on 2 ranks: rank 1 gets a stand-in.
    last = split_global_batches([5], 4, 1, 2)[0]
    assert last.indices == [5] and last.real == 0 and last.share == 0.0


def _metrics(run_dir):
    with open(run_dir / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    cache, annotations = labelled_cache(root, VIDEOS)
    # Global batch 5 over 21 train videos: 5, 5, 5, 5, 1 -> chunks 3+2 and, last, 1 + a zero-weight stand-in;
    # 3 val videos -> 2+1.
    # lr 1e-4: two ranks sum the same gradients in another order than one process, and Adam turns those
    # last-bit differences into whole steps where a gradient is near zero (it divides by the gradient's own
    # magnitude), so the curves drift apart chaotically, by a gap that grows with lr (measured, epoch 2:
    # rel. 2e-6 at lr 1e-4, 3e-3 at lr 1e-3 and 3e-3). At 1e-4 what remains is float rounding.
    args = ["train", str(cache), "--annotations", str(annotations), "--epochs", "2", "--batch-size", "5",
            "--seed", "4", "--dropout", "0", "--device", "cpu", "--in-memory", "no", "--lr", "1e-4"]
    single = run(avepipe(*args, "-o", str(root / "single")))
    assert single.returncode == 0, single.stderr[-3000:]
    assert "21 train, 3 val" in single.stderr
    ddp = run(torchrun(2, "-m", "avepipe", *args, "-o", str(root / "ddp")))
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    return root, single, ddp


def test_two_ranks_match_one_process(runs):
    root, _, _ = runs
    one, two = _metrics(root / "single"), _metrics(root / "ddp")
    assert [r["epoch"] for r in two] == ["1", "2"]
    for column in ("train_loss", "train_ce", "train_avps", "train_acc", "val_acc"):
        np.testing.assert_allclose([float(r[column]) for r in two], [float(r[column]) for r in one],
                                   rtol=1e-4, err_msg=column)
    # The losses moved (a run that did not train would match trivially).
    assert float(one[1]["train_loss"]) < float(one[0]["train_loss"])
    w1, w2 = load_file(str(root / "single" / "last" / "model.safetensors")), \
        load_file(str(root / "ddp" / "last" / "model.safetensors"))
    # Weights agree up to float noise that Adam amplifies where a gradient is near zero (it divides by
    # the gradient's own magnitude): on average far below one step of lr 1e-4; at worst a few steps taken
    # in opposite directions (a flipped sign moves a weight by 2 lr).
    diff = np.concatenate([np.abs(w2[name] - w1[name]).ravel() for name in w1])
    assert diff.mean() < 1e-6 and diff.max() < 5e-4


def test_only_rank_zero_reports_and_writes(runs):
    root, _, ddp = runs
    assert ddp.stdout.count("best validation segment accuracy") == 1
    assert ddp.stderr.count("random split") == 1
    state = json.loads((root / "ddp" / "last" / "training_state.json").read_text())
    assert state["epoch"] == 2 and state["train_config"]["dropout"] == 0
    assert sorted(p.name for p in (root / "ddp").iterdir()) == sorted(p.name for p in (root / "single").iterdir())
