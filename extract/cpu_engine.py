"""How VGG-19 runs: the module as written (``torch-eager``) or traced, frozen and optimised for inference (``torch-jit``).

``torch-jit`` (``torch.jit.trace`` + ``freeze`` + ``optimize_for_inference``) hands the
convolutions to oneDNN with their weights reordered once, at build time, and ReLU fused,
instead of reordering the weights on every call. In ``benchmarks/vgg_engines.py`` it was the
fastest engine whose maps stay within 1e-5 of fp32 (its fp32 maps equal torch's contiguous
fp32 bit for bit), ahead of onnxruntime and OpenVINO (see docs/extraction.md "CPU engine"),
with no extra package and no compile wait (about half a second, against minutes for
``torch.compile``). It is the CPU default (``auto``); on a GPU the module runs as written.
If tracing fails (a future torch without TorchScript), ``auto`` falls back to ``torch-eager``
and records that.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from avepipe.errors import UserError
from avepipe.extract.batching import PRECISIONS

ENGINES = ("auto", "torch-jit", "torch-eager")
TRACE_SHAPE = (1, 3, 224, 224)     # any batch size runs on the traced graph; one frame traces fastest


def choose_engine(requested: str, device: torch.device) -> str:
    """The engine ``requested`` ("auto", "torch-jit", "torch-eager") means on ``device``."""
    if requested not in ENGINES:
        raise UserError(f"unknown engine {requested!r}: choose one of {', '.join(ENGINES)}")
    if device.type != "cpu":
        if requested == "torch-jit":
            raise UserError(f"--engine torch-jit runs on the CPU only (device {device}): use auto or torch-eager")
        return "torch-eager"
    return "torch-jit" if requested == "auto" else requested


def prepare(features: nn.Module, requested: str, device: torch.device, precision: str) -> tuple[nn.Module, str]:
    """``features`` ready to run on ``device`` at ``precision``, and the name of the engine that runs it."""
    engine = choose_engine(requested, device)
    if engine == "torch-eager":
        return features, engine
    try:
        return frozen(features, precision), engine
    except Exception as exc:    # TorchScript missing or unable to trace: eager computes the same maps
        if requested == "torch-jit":
            raise UserError(f"--engine torch-jit: cannot trace VGG-19 with this torch ({exc}); "
                            "use --engine torch-eager") from exc
        return features, "torch-eager"


def frozen(features: nn.Module, precision: str) -> torch.jit.ScriptModule:
    """``features`` traced (under ``precision``'s autocast), frozen and optimised for inference on the CPU.

    TorchScript's deprecation warnings are silenced here: they concern its future, not these maps.
    """
    dtype = PRECISIONS[precision]
    features = features.eval().requires_grad_(False)
    example = torch.zeros(TRACE_SHAPE).contiguous(memory_format=torch.channels_last)
    with warnings.catch_warnings(), torch.no_grad(), \
            torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(features, example, check_trace=False)
        return torch.jit.optimize_for_inference(torch.jit.freeze(traced))
