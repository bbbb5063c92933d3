"""How VGG-19 runs on the CPU: OpenVINO (optional), traced and frozen TorchScript, or the module as written.

- ``openvino``: the module converted by OpenVINO (``openvino.convert_model``, in memory, from the
  module's own weights; nothing is written) and compiled for the CPU in f32, or in bf16 on a CPU
  with native bf16 whose compiled model confirms bf16. The fastest engine measured, or within the
  noise of it, in both precisions (docs/extraction.md "CPU engine"); used when the ``openvino``
  package is installed (``pip install 'avepipe[cpu-engines]'``).
- ``torch-jit``: ``torch.jit.trace`` + ``freeze`` + ``optimize_for_inference``: oneDNN convolutions
  with the weights reordered once, at build time, instead of on every call. Its fp32 maps equal
  torch's NCHW fp32 maps bit for bit; no extra package, about half a second to build (against
  minutes for ``torch.compile``, which was not faster). The CPU default without OpenVINO, for
  fp16, and for bf16 where OpenVINO would not confirm bf16 (the recorded precision must be what ran).
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
from avepipe.machine import cpu_flags, native_bf16_flag

ENGINES = ("auto", "openvino", "torch-jit", "torch-eager")
OPENVINO_PRECISIONS = {"fp32": "f32", "bf16": "bf16"}       # ours -> OpenVINO's inference precision
OPENVINO_INSTALL = "pip install 'avepipe[cpu-engines]'"
TRACE_SHAPE = (1, 3, 224, 224)     # any batch size runs on the traced graph; one frame traces fastest
# Frames per VGG-19 batch by engine. OpenVINO's maps do not depend on the batch size (tested), and a
# batch of 32 first-touches about 0.9 GB of its buffers (3.4 s of page faults in a cold `localize` on
# the 2-core VM of docs/benchmarks.md) where 8 runs as fast per frame with a quarter of the memory.
BATCH_SIZES = {"openvino": 8}
DEFAULT_BATCH_SIZE = 32


def batch_size_for(engine: str) -> int:
    """The default VGG-19 batch size on ``engine`` (``--batch-size`` overrides it)."""
    return BATCH_SIZES.get(engine, DEFAULT_BATCH_SIZE)


def choose_engines(requested: str, device: torch.device, precision: str) -> list[str]:
    """The engines to try, best first, for ``requested`` ("auto" or one of ``ENGINES``) on ``device``."""
    if requested not in ENGINES:
        raise UserError(f"unknown engine {requested!r}: choose one of {', '.join(ENGINES)}")
    if device.type != "cpu":
        if requested not in ("auto", "torch-eager"):
            raise UserError(f"--engine {requested} runs on the CPU only (device {device}): use auto or torch-eager")
        return ["torch-eager"]
    if requested == "openvino" and precision not in OPENVINO_PRECISIONS:
        raise UserError(f"--engine openvino runs fp32 and bf16 only (--precision {precision}): use auto or torch-jit")
    if requested == "openvino" and not openvino_installed():
        raise UserError(f"--engine openvino needs the openvino package: {OPENVINO_INSTALL}")
    if requested != "auto":
        return [requested]
    preferred = ["openvino"] if precision in OPENVINO_PRECISIONS and openvino_installed() else []
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
    """``features`` compiled by OpenVINO for the CPU at ``precision``, any batch size, with torch's thread count.

    ValueError when the compiled model would compute another precision than asked for.
    """

    def __init__(self, features: nn.Module, precision: str = "fp32") -> None:
        super().__init__()
        import openvino as ov

        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            model = ov.convert_model(features.eval(), example_input=torch.zeros(TRACE_SHAPE),
                                     input=[ov.PartialShape([-1, *TRACE_SHAPE[1:]])])
        wanted = OPENVINO_PRECISIONS[precision]
        compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": wanted,
                                                          "INFERENCE_NUM_THREADS": torch.get_num_threads()})
        used = compiled.get_property("INFERENCE_PRECISION_HINT")
        if used.to_string() != wanted:
            raise ValueError(f"OpenVINO would compute {used} here, not {wanted}")
        self._request = compiled.create_infer_request()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        maps = self._request.infer({0: images.float().numpy()})[0]
        return torch.from_numpy(maps.copy())        # the request reuses its output buffer


def openvino_module(features: nn.Module, precision: str) -> OpenVINOFeatures:
    """OpenVINO at ``precision``; bf16 only where the CPU computes it natively (else it may quietly run f32)."""
    if precision == "bf16" and native_bf16_flag(cpu_flags()) is None:
        raise ValueError("this CPU has no native bf16")
    return OpenVINOFeatures(features, precision)
