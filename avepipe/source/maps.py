"""The sound-source maps of one video's features: what ``source evaluate`` scores and ``localize`` draws."""
from __future__ import annotations

import numpy as np
import torch

from avepipe.extract.features import VideoFeatures
from avepipe.models.fnac import SoundSourceLocalizer


@torch.no_grad()
def source_maps(model: SoundSourceLocalizer, features: VideoFeatures, device: str = "cpu") -> np.ndarray:
    """Sound-source maps ``[T,7,7]`` (cosine similarity) of every second of one video."""
    segments = min(len(features.audio), len(features.visual))
    audio = torch.as_tensor(np.asarray(features.audio[:segments], dtype=np.float32), device=device)
    visual = torch.as_tensor(np.asarray(features.visual[:segments], dtype=np.float32), device=device)
    return model.eval().similarity_map(audio, visual).cpu().numpy()
