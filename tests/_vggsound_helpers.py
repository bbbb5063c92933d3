"""A VGGSound-AVEL stand-in: the dataset's own file formats with known flags, and a cache of features that carry them."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from avepipe.data.vggsound import write_vggsound_files

from tests._train_helpers import T, write_cache

CATEGORIES = [f"category {k}" for k in range(5)]
SPLIT_SIZES = {"train": 40, "val": 10, "test": 10}


def vggsound_stand_in(root, seed=0):
    """VGGSound-AVEL files plus a cache whose features carry each second's label (a class prototype in both
    modalities where the flag is 1, the category seen but silent where it is 0): learnable, labels known."""
    root, rng = Path(root), np.random.default_rng(seed)
    videos = []
    for split, count in SPLIT_SIZES.items():
        for i in range(count):
            flags = np.zeros(T, np.int64)
            start = int(rng.integers(0, T - 3))
            flags[start:start + int(rng.integers(2, T - start + 1))] = 1
            videos.append((f"{split}{i:03d}_000010", CATEGORIES[int(rng.integers(len(CATEGORIES)))], split, flags))
    files = write_vggsound_files(root / "vggsound", videos, CATEGORIES)
    audio_proto = rng.normal(0, 1, (len(CATEGORIES), 128)).astype(np.float32)
    visual_proto = np.abs(rng.normal(0, 1, (len(CATEGORIES), 512))).astype(np.float32)
    audio = rng.normal(0, 0.3, (len(videos), T, 128)).astype(np.float32)
    visual = np.abs(rng.normal(0, 0.3, (len(videos), T, 7, 7, 512))).astype(np.float32)
    for i, (_, category, _, flags) in enumerate(videos):
        k = CATEGORIES.index(category)
        visual[i] += 2 * visual_proto[k]
        audio[i] += 2 * flags[:, None] * audio_proto[k]
    cache = write_cache(root / "features.h5", [v[0] for v in videos], audio, visual, dtype="float16")
    return files, cache, videos
