"""Event models for audio-visual event localisation; ``registry`` lists them and ``build_model`` builds one."""
from __future__ import annotations

from avepipe.models.base import EventNetwork
from avepipe.models.outputs import ModelOutput
from avepipe.models.registry import build as build_model

__all__ = ["build_model", "EventNetwork", "ModelOutput"]
