"""Sound-source baselines a localiser must beat: a random cell, the best fixed cell, a supervised probe.

Where objects usually sit is a strong prior: on data whose boxes cover much of the frame,
always answering the centre scores nearly perfectly. These references are scored with the
same metrics as the model (avepipe/source/metrics.py), on the same seconds:

- random cell: each second's map is one 7x7 cell drawn uniformly (seeded);
- best fixed cell: the one cell whose centre falls in the most training boxes, answered
  for every second (fitted on the training videos only);
- linear probe (a ceiling, supervised): a logistic regression on each position's pool5
  vector, trained to say whether that cell's centre lies in the training box; its map is
  the logit per cell. It sees no audio, so with silent distractors it finds objects of
  the sounding kind seen in training, not the sound.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avepipe.event.baselines import fit_linear_probe
from avepipe.source.metrics import Box, evaluate_maps, point_in_box

GRID = 7
# How far above the best fixed cell a localiser's validation peak-in-box must be before ``source train``
# stops warning: the margin the project's acceptance asks of FNAC.
NEAR_FIXED_CELL = 0.15


@dataclass
class Samples:
    """Seconds to score: one box each (frame pixels), the frame size, and optionally the pool5 maps."""

    boxes: list[Box]
    frame_sizes: list[tuple[int, int]]
    visual: np.ndarray | None = None    # [N, 7, 7, 512]

    def __len__(self) -> int:
        return len(self.boxes)


def cell_centre(row: int, col: int, frame_size: tuple[int, int]) -> tuple[float, float]:
    return ((col + 0.5) * frame_size[0] / GRID, (row + 0.5) * frame_size[1] / GRID)


def cell_hits(samples: Samples) -> np.ndarray:
    """``[N, 7, 7]`` booleans: is each cell's centre inside the second's box."""
    return np.array([[[point_in_box(cell_centre(r, c, size), box) for c in range(GRID)] for r in range(GRID)]
                     for box, size in zip(samples.boxes, samples.frame_sizes)], dtype=bool)


def one_hot_maps(cells: np.ndarray) -> np.ndarray:
    """``[N, 7, 7]`` maps that are 1 at the flat cell index ``cells[i]`` and 0 elsewhere."""
    maps = np.zeros((len(cells), GRID * GRID), np.float32)
    maps[np.arange(len(cells)), cells] = 1.0
    return maps.reshape(-1, GRID, GRID)


def best_fixed_cell(train: Samples) -> int:
    """Flat index of the cell whose centre lies in the most training boxes (lowest index on ties)."""
    return int(np.argmax(cell_hits(train).reshape(len(train), -1).sum(axis=0)))


def fit_location_probe(train: Samples):
    """Logistic regression from a position's pool5 vector to "this cell's centre is in the box"."""
    features = train.visual.reshape(-1, train.visual.shape[-1])
    # 49 positions per second make this a large problem; 100 L-BFGS steps reach a stable ranking.
    return fit_linear_probe(features, cell_hits(train).reshape(-1).astype(np.int64), num_classes=2, max_iter=100)


def probe_maps(probe, visual: np.ndarray) -> np.ndarray:
    """The probe's in-box logit margin per cell: ``[N, 7, 7]``."""
    scores = probe.scores(visual.reshape(-1, visual.shape[-1]))
    return (scores[:, 1] - scores[:, 0]).reshape(len(visual), GRID, GRID)


def baseline_metrics(train: Samples, scored: Samples, threshold: float | str = 0.5, seed: int = 0,
                     linear_probe: bool = False) -> dict[str, dict]:
    """The metrics of every baseline on ``scored``, fitted on ``train`` where they are fitted at all."""
    rng = np.random.default_rng(seed)
    n = len(scored)
    fixed = best_fixed_cell(train)
    found = {
        "random_cell": evaluate_maps(one_hot_maps(rng.integers(GRID * GRID, size=n)), scored.boxes,
                                     scored.frame_sizes, threshold),
        "fixed_cell": {**evaluate_maps(one_hot_maps(np.full(n, fixed)), scored.boxes, scored.frame_sizes, threshold),
                       "cell": list(divmod(fixed, GRID))},
    }
    if linear_probe:
        probe = fit_location_probe(train)
        found["linear_probe"] = evaluate_maps(probe_maps(probe, scored.visual), scored.boxes, scored.frame_sizes,
                                              threshold)
    return found


def near_fixed_cell_warning(best_val_peak: float, fixed_val_peak: float, train_videos: int) -> str | None:
    """What ``source train`` prints at the end when the localiser is no better than a constant guess."""
    if best_val_peak - fixed_val_peak > NEAR_FIXED_CELL + 1e-9:
        return None
    return (f"warning: the best validation peak-in-box {best_val_peak:.2f} is not more than {NEAR_FIXED_CELL} above "
            f"always answering the best fixed cell ({fixed_val_peak:.2f}): the localiser has learnt little beyond "
            f"where objects usually are. Contrastive localisers need many videos: on small-object synth videos "
            f"FNAC found the object with 210 training videos and learnt each video's background with 42 (this run: "
            f"{train_videos}; docs/baselines.md). Check the features with `avepipe source evaluate --linear-probe`.")
