"""How VGG-19 runs on the CPU: OpenVINO (optional), traced and frozen TorchScript, or the module as written.

- ``openvino``: the module converted by OpenVINO (``openvino.convert_model``, in memory, from the
  module's own weights; nothing is written) and compiled for the CPU in f32. The fastest exact
  engine measured (docs/extraction.md "CPU engine"); used for fp32 when the ``openvino`` package is
  installed (``pip install 'avepipe[cpu-engines]'``).
- ``torch-jit``: ``torch.jit.trace`` + ``freeze`` + ``optimize_for_inference``: oneDNN convolutions
  with the weights reordered once, at build time, instead of on every call. Its fp32 maps equal
  torch's NCHW fp32 maps bit for bit; no extra package, about half a second to build (against
  minutes for ``torch.compile``, which was not faster). The CPU default without OpenVINO, and
  for bf16/fp16 always: OpenVINO may quietly compute f32 where a CPU lacks bf16, and the
  recorded precision must be what ran.
- ``torch-eager``: the module as written, channels-last; every GPU.

``auto`` takes the first of these that builds, and the encoder records which one did.
"""
from __future__ import annotations

import importlib.util
import warnings

import torch
from torch import nn

from avepipe.errors import UserError
from avepipe.extract.batching import PRECISIONS

ENGINES = ("auto", "openvino", "torch-jit", "torch-eager")
OPENVINO_INSTALL = "pip install 'avepipe[cpu-engines]'"
TRACE_SHAPE = (1, 3, 224, 224)     # any batch size runs on the traced graph; one frame traces fastest


def choose_engines(requested: str, device: torch.device, precision: str) -> list[str]:
    """The engines to try, best first, for ``requested`` ("auto" or one of ``ENGINES``) on ``device``."""
    if requested not in ENGINES:
        raise UserError(f"unknown engine {requested!r}: choose one of {', '.join(ENGINES)}")
    if device.type != "cpu":
        if requested not in ("auto", "torch-eager"):
            raise UserError(f"--engine {requested} runs on the CPU only (device {device}): use auto or torch-eager")
        return ["torch-eager"]
    if requested == "openvino" and precision != "fp32":
        raise UserError(f"--engine openvino runs fp32 only (--precision {precision}): use auto or torch-jit")
    if requested == "openvino" and not openvino_installed():
        raise UserError(f"--engine openvino needs the openvino package: {OPENVINO_INSTALL}")
    if requested != "auto":
        return [requested]
    preferred = ["openvino"] if precision == "fp32" and openvino_installed() else []
    return [*preferred, "torch-jit", "torch-eager"]


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def prepare(features: nn.Module, requested: str, device: torch.device, precision: str) -> tuple[nn.Module, str]:
    """``features`` ready to run on ``device`` at ``precision``, and the name of the engine that runs it."""
    builders = {"openvino": openvino_module, "torch-jit": frozen}
    for engine in choose_engines(requested, device, precision):
        if engine == "torch-eager":
            return features, engine
        try:
            return builders[engine](features, precision), engine
        except Exception as exc:    # a converter that cannot take this module here: the next engine
            if requested == engine:
                raise UserError(f"--engine {engine}: cannot build VGG-19 with it here ({exc}); "
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


class OpenVINOFeatures(nn.Module):
    """``features`` compiled by OpenVINO for the CPU in f32, any batch size, with torch's thread count."""

    def __init__(self, features: nn.Module) -> None:
        super().__init__()
        import openvino as ov

        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            model = ov.convert_model(features.eval(), example_input=torch.zeros(TRACE_SHAPE),
                                     input=[ov.PartialShape([-1, *TRACE_SHAPE[1:]])])
        compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                          "INFERENCE_NUM_THREADS": torch.get_num_threads()})
        self._request = compiled.create_infer_request()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        maps = self._request.infer({0: images.float().numpy()})[0]
        return torch.from_numpy(maps.copy())        # the request reuses its output buffer


def openvino_module(features: nn.Module, precision: str) -> OpenVINOFeatures:
    if precision != "fp32":
        raise ValueError(f"OpenVINO runs fp32 here, not {precision}")
    return OpenVINOFeatures(features)
