"""Seeds: initialisation and each epoch's shuffling are functions of the run's seed, so a resumed run repeats them."""
from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed torch, NumPy and Python so model initialisation is reproducible."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))
    random.seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's shuffling: distinct per epoch, independent of what ran before."""
    return (seed * 1_000_003 + epoch) % (2 ** 63)
