"""Sound-source baselines on boxes whose answer is known: best fixed cell, random cell, linear probe, splits."""
from __future__ import annotations

import numpy as np
import pytest

from avepipe.errors import UserError
from avepipe.source.baselines import (GRID, Samples, baseline_metrics, best_fixed_cell, cell_hits, near_fixed_cell_warning,
                                      one_hot_maps)
from avepipe.data.splits import seeded_split

FRAME = (70, 70)      # 7x7 cells of 10x10 pixels


def _cell_box(row, col, cells=1):
    return (col * 10.0, row * 10.0, (col + cells) * 10.0, (row + cells) * 10.0)


def test_cell_hits_mark_the_cells_whose_centres_lie_in_the_box():
    hits = cell_hits(Samples([_cell_box(2, 3, cells=2)], [FRAME]))
    expected = np.zeros((GRID, GRID), bool)
    expected[2:4, 3:5] = True
    np.testing.assert_array_equal(hits[0], expected)


def test_best_fixed_cell_is_where_most_training_boxes_are_and_scores_exactly_its_share():
    train = Samples([_cell_box(1, 5)] * 3 + [_cell_box(4, 0)] * 2, [FRAME] * 5)
    assert best_fixed_cell(train) == 1 * GRID + 5
    scored = Samples([_cell_box(1, 5), _cell_box(4, 0), _cell_box(6, 6), _cell_box(1, 4, cells=2)], [FRAME] * 4)
    found = baseline_metrics(train, scored)
    assert found["fixed_cell"]["cell"] == [1, 5]
    assert found["fixed_cell"]["peak_in_box"] == pytest.approx(2 / 4)     # first and last boxes hold (1, 5)
    # A one-cell box and a one-hot map on it: the binarised upsampled map covers the cell -> IoU >= 0.5.
    assert found["fixed_cell"]["ciou"] == pytest.approx(1 / 4)


def test_random_cell_hits_at_the_rate_of_the_box_area():
    boxes = [_cell_box(r, c, cells=3) for r in range(5) for c in range(5)] * 40     # 9 of 49 cells each
    found = baseline_metrics(Samples(boxes[:5], [FRAME] * 5), Samples(boxes, [FRAME] * len(boxes)), seed=3)
    assert found["random_cell"]["peak_in_box"] == pytest.approx(9 / 49, abs=0.03)


def test_linear_probe_finds_the_object_cell_from_pool5_vectors():
    rng = np.random.default_rng(0)
    pattern = np.abs(rng.normal(size=512)).astype(np.float32)

    def samples(n):
        cells = rng.integers(GRID * GRID, size=n)
        visual = np.abs(rng.normal(size=(n, GRID, GRID, 512))).astype(np.float32)
        visual.reshape(n, -1, 512)[np.arange(n), cells] += pattern
        return Samples([_cell_box(*divmod(int(c), GRID)) for c in cells], [FRAME] * n, visual)

    found = baseline_metrics(samples(60), samples(40), linear_probe=True)
    assert found["linear_probe"]["peak_in_box"] >= 0.95
    assert found["fixed_cell"]["peak_in_box"] <= 0.2


def test_one_hot_maps_peak_at_the_given_cells():
    maps = one_hot_maps(np.array([0, 48, 10]))
    assert [int(np.argmax(m)) for m in maps] == [0, 48, 10] and maps.sum() == 3


def test_the_seeded_split_of_video_ids_is_seeded_disjoint_and_complete():
    ids = [f"v{i}" for i in range(20)]
    splits = seeded_split(ids, (0.7, 0.2, 0.1), seed=4)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [14, 4, 2]
    assert sorted(sum(splits.values(), [])) == sorted(ids)
    assert all(splits[s] == [i for i in ids if i in splits[s]] for s in splits)     # each keeps the given order
    assert seeded_split(ids, (0.7, 0.2, 0.1), seed=4) == splits != seeded_split(ids, (0.7, 0.2, 0.1), seed=5)
    assert [len(v) for v in seeded_split(ids[:3], (0.8, 0.1, 0.1), seed=0).values()] == [1, 1, 1]
    with pytest.raises(UserError, match="split fractions must be three non-negative numbers summing to 1"):
        seeded_split(ids, (-0.1, 0.7, 0.4), seed=0)


def test_near_fixed_cell_warning_fires_within_the_margin_and_names_the_figures():
    message = near_fixed_cell_warning(0.30, 0.15, 42)
    assert message.startswith("warning: the best validation peak-in-box 0.30 is not more than 0.15 above")
    assert "best fixed cell (0.15)" in message and "this run: 42" in message and "--linear-probe" in message
    assert near_fixed_cell_warning(0.10, 0.20, 42) is not None        # below the constant guess
    assert near_fixed_cell_warning(0.58, 0.06, 210) is None
    assert near_fixed_cell_warning(0.31, 0.15, 42) is None
