"""avepipe: audio-visual event localisation from raw video (PSP, CPSP on VGG-19 + VGGish features).

``from avepipe import Localizer`` is the Python API; it is imported lazily so that
``import avepipe`` (and ``avepipe --help``) stay fast and do not load torch.
"""
import importlib

__version__ = "0.1.0"

_LAZY = {
    "Localizer": "avepipe.localizer",
    "LocalizationResult": "avepipe.results",
    "SegmentPrediction": "avepipe.results",
    "Interval": "avepipe.results",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'avepipe' has no attribute {name!r}")
