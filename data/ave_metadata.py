"""The official AVE metadata shipped inside avepipe, and the name ``ave`` that selects it.

``Annotations.txt`` and the official ``train/val/test_order.h5`` come from the AVE
authors' public repository (docs/data.md gives the source and checksums), so a
real AVE run needs only the videos: ``--annotations ave --splits ave``.
"""
from __future__ import annotations

from pathlib import Path

AVE_METADATA_DIR = Path(__file__).resolve().with_name("ave")
AVE_ANNOTATIONS = AVE_METADATA_DIR / "Annotations.txt"
BUNDLED = "ave"


def resolve_annotations(value: str | Path) -> Path:
    """``ave`` names the bundled official ``Annotations.txt``; anything else is a path (``./ave`` for a file so named)."""
    return AVE_ANNOTATIONS if str(value) == BUNDLED else Path(value)


def resolve_splits_dir(value: str | Path) -> Path:
    """``ave`` names the folder of the bundled official split files; anything else is a path."""
    return AVE_METADATA_DIR if str(value) == BUNDLED else Path(value)
