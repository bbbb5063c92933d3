"""7x7 maps over a frame (attention, sound-source similarity) brought to the frame's pixels.

One definition for the sound-source metrics, the heatmaps and localize's explain pictures, so
every picture and every score sees the same upsampled map.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def upsample_map(grid_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of an ``[h, w]`` map to ``size = (width, height)``.

    ``align_corners=False`` puts each cell's value at the centre of the pixels it covers.
    """
    tensor = torch.as_tensor(np.asarray(grid_map, dtype=np.float32))[None, None]
    width, height = size
    return F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False)[0, 0].numpy()
