"""The device work runs on when the user names none: the GPU when there is one, else the CPU."""
from __future__ import annotations

import torch


def select_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as given, else ``cuda`` when available, else ``cpu``."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
