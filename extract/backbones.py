"""The two feature functions of a video, and their identity (``ExtractorConfig``).

``build_encoders`` makes them from user options; ``build_encoders_for`` rebuilds
exactly the ones a checkpoint or cache recorded, refusing other weights.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Protocol

import numpy as np
import torch
from torch import nn

from avepipe.device import select_device
from avepipe.errors import ARGUMENT, UserError
from avepipe.extract.ave_recipe import require_ave_extra
from avepipe.extract.cpu_engine import batch_size_for, prepare
from avepipe.extract.features import AUDIO_SHAPE, VISUAL_SHAPE
from avepipe.extract.keras_vgg19 import caffe_preprocess, load_keras_vgg19_notop
from avepipe.extract.logmel import SAMPLE_RATE, log_mel_examples
from avepipe.extract.provenance import AVE_RECIPE, PIPELINE_VERSION, ExtractorConfig, require_same_extractor
from avepipe.extract.tfhub_vggish import TFHUB_VGGISH_ID, TfHubVGGishEncoder
from avepipe.extract.vgg19 import imagenet_preprocess, load_torchvision_vgg19, vgg19_features
from avepipe.extract.vggish import VGGish, load_vggish_weights
from avepipe.extract.weights import (
    KERAS_VGG19_NOTOP,
    TORCHVISION_VGG19,
    VGGISH,
    WeightsFile,
    resolve_weights,
    weights_identity,
)

PRESETS = ("torchvision", "ave")
AUDIO_BACKENDS = ("torch", "tfhub")
_AUDIO_BACKBONE_NAMES = {"torch": "vggish-torch", "tfhub": "vggish-tfhub"}


def _to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if device.type == "cuda":
        tensor = tensor.pin_memory()  # lets the copy below overlap with compute
    return tensor.to(device, non_blocking=True)


class VisualEncoder:
    """uint8 RGB frames ``[N, 224, 224, 3]`` -> VGG-19 pool5 maps ``[N, 7, 7, 512]`` float32, channels-last.

    ``engine`` says how ``features`` runs (``extract.cpu_engine``); ``self.engine`` is the one
    that does. ``build_encoders`` asks for ``auto``; a module built here directly runs as written.
    ``batch_size``: frames per forward pass, by default the engine's (``cpu_engine.batch_size_for``).
    """

    def __init__(
        self,
        features: nn.Module,
        preprocess: Callable[[torch.Tensor], torch.Tensor],
        device: str | torch.device | None = None,
        batch_size: int | None = None,
        precision: str = "fp32",
        engine: str = "torch-eager",
    ) -> None:
        self.device = select_device(device)
        features = features.eval().to(self.device, memory_format=torch.channels_last)
        self.features, self.engine = prepare(features, engine, self.device, precision)
        self.preprocess = preprocess
        self.batch_size = batch_size or batch_size_for(self.engine)

    def encode(self, frames: np.ndarray) -> np.ndarray:
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"expected uint8 frames [N, H, W, 3], got {frames.dtype} {frames.shape}")
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(frames), self.batch_size):
                batch = _to_device(frames[start:start + self.batch_size], self.device)
                images = self.preprocess(batch).contiguous(memory_format=torch.channels_last)
                maps = self.features(images)  # [B, 512, h, w], channels-last memory
                outputs.append(maps.permute(0, 2, 3, 1).float().cpu().numpy())
        if not outputs:
            return np.zeros((0, *VISUAL_SHAPE), np.float32)
        return np.ascontiguousarray(np.concatenate(outputs), dtype=np.float32)


class AudioEncoder(Protocol):
    """16 kHz mono waveform -> one 128-d VGGish embedding per segment ``[T, 128]``.

    Example t starts at sample ``hop * t``: 16000 (one per second) by default, 15360
    (0.96 s, examples framed from a whole clip) for the AVE recipe.
    """

    def encode(self, waveform_16k: np.ndarray, segments: int, hop: int = SAMPLE_RATE) -> np.ndarray: ...


class VGGishEncoder:
    """The torch ``AudioEncoder``: VGGish-exact log-mel, then our PyTorch VGGish."""

    def __init__(self, model: VGGish, device: str | torch.device | None = None, batch_size: int = 64) -> None:
        self.device = select_device(device)
        self.model = model.eval().to(self.device)
        self.batch_size = batch_size
        self._stream = _own_stream(self.device)

    def encode(self, waveform_16k: np.ndarray, segments: int, hop: int = SAMPLE_RATE) -> np.ndarray:
        examples = log_mel_examples(waveform_16k, segments, hop)[:, None]  # [T, 1, 96, 64]
        outputs = [np.zeros((0, *AUDIO_SHAPE), np.float32)]
        on_stream = torch.cuda.stream(self._stream) if self._stream is not None else contextlib.nullcontext()
        with torch.inference_mode(), on_stream:
            for start in range(0, len(examples), self.batch_size):
                batch = _to_device(examples[start:start + self.batch_size], self.device)
                outputs.append(self.model(batch).float().cpu().numpy())
        return np.concatenate(outputs)


def _own_stream(device: torch.device):
    """A CUDA stream for VGGish alone (None on CPU).

    Its ``.cpu()`` then waits for VGGish only; on the device's main stream it also waited for
    every VGG-19 batch queued before it, stalling the main thread that feeds the GPU. The
    weights' copy to the GPU is finished first, so the new stream never reads them half-copied.
    """
    if device.type != "cuda":
        return None
    torch.cuda.current_stream(device).synchronize()
    return torch.cuda.Stream(device)


def _seeded(build: Callable[[], nn.Module], init: Callable[[nn.Module], None], seed: int) -> nn.Module:
    """Build and initialise a module from ``seed`` alone, leaving the global RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = build()
        init(module)
    return module


def _he_init(module: nn.Module) -> None:
    """He-normal weights, zero biases: keeps activations alive through 16+ random ReLU layers."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(layer.bias)


def _parse_random(identity: str) -> int | None:
    if not identity.startswith("random:"):
        return None
    try:
        return int(identity.removeprefix("random:"))
    except ValueError:
        raise UserError(f"unreadable random-weights identity {identity!r} in extractor config") from None


def _resolve_checked(spec: WeightsFile, explicit: str | None, expected: str | None) -> tuple[str, str]:
    """Resolve a weights file and its identity; when ``expected`` is given, refuse any other file."""
    path = resolve_weights(spec, explicit)
    identity = weights_identity(spec, path)
    if expected is not None and identity != expected:
        raise UserError(
            f"{path}: {spec.description} file is {identity} but the features were extracted with "
            f"{expected}: give the original file with {ARGUMENT} or {spec.env_var}", spec.argument
        )
    return str(path), identity


def _visual(preset: str, vgg_weights: str | None, seed: int | None, device, precision: str, engine: str,
            expected: str | None = None):
    preprocess = caffe_preprocess if preset == "ave" else imagenet_preprocess
    if seed is not None:
        features, identity = _seeded(vgg19_features, _he_init, seed), f"random:{seed}"
    elif preset == "ave":
        path, identity = _resolve_checked(KERAS_VGG19_NOTOP, vgg_weights, expected)
        features = load_keras_vgg19_notop(vgg19_features(), path)
    else:
        path, identity = _resolve_checked(TORCHVISION_VGG19, vgg_weights, expected)
        with torch.device("meta"):
            architecture = vgg19_features()
        features = load_torchvision_vgg19(architecture, path)
    return VisualEncoder(features, preprocess, device, precision=precision, engine=engine), identity


def _audio(backend: str, vggish_weights: str | None, seed: int | None, device, expected: str | None = None):
    if backend == "tfhub":
        if seed is not None:
            raise UserError("--random-backbones builds the torch VGGish: use it with --audio-backend torch")
        if vggish_weights:
            raise UserError("--vggish-weights is for --audio-backend torch; TF-Hub uses its own cache (TFHUB_CACHE_DIR)")
        return TfHubVGGishEncoder(device=select_device(device)), TFHUB_VGGISH_ID
    if seed is not None:
        return VGGishEncoder(_seeded(VGGish, _he_init, seed), device), f"random:{seed}"
    path, identity = _resolve_checked(VGGISH, vggish_weights, expected)
    return VGGishEncoder(load_vggish_weights(VGGish(), path), device), identity


def _check_choices(preset: str, audio_backend: str) -> None:
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    if audio_backend not in AUDIO_BACKENDS:
        raise UserError(f"unknown audio backend {audio_backend!r}: choose one of {', '.join(AUDIO_BACKENDS)}")


def build_encoders(
    preset: str = "torchvision",
    audio_backend: str = "torch",
    vgg_weights: str | None = None,
    vggish_weights: str | None = None,
    random_seed: int | None = None,
    device: str | torch.device | None = None,
    fps: int = 16,
    segments: int | None = None,
    precision: str = "fp32",
    allow_tf32: bool = False,
    engine: str = "auto",
) -> tuple[VisualEncoder, AudioEncoder, ExtractorConfig]:
    """Encoders for the user's options, and the ``ExtractorConfig`` that identifies them.

    ``random_seed`` gives both backbones seeded random weights (smoke tests,
    demos), recorded as ``random:<seed>`` so such features are never mistaken
    for real ones. ``preset="ave"`` also selects the AVE recipe (``AVE_RECIPE``).
    ``allow_tf32`` is recorded only where it changes anything: on CUDA. ``engine``
    (``extract.cpu_engine.ENGINES``) is recorded as the engine that ran, not as identity.
    """
    _check_choices(preset, audio_backend)
    recipe = AVE_RECIPE if preset == "ave" else {}
    _check_recipe_extra(recipe)
    if random_seed is not None and (vgg_weights or vggish_weights):
        raise UserError("--random-backbones and --vgg-weights/--vggish-weights exclude each other")
    audio, audio_id = _audio(audio_backend, vggish_weights, random_seed, device)
    visual, visual_id = _visual(preset, vgg_weights, random_seed, device, precision, engine)
    config = ExtractorConfig(
        visual_preset=preset,
        visual_weights=visual_id,
        audio_backbone=_AUDIO_BACKBONE_NAMES[audio_backend],
        audio_weights=audio_id,
        fps=fps,
        segments=segments,
        visual_precision=precision,
        tf32=allow_tf32 and visual.device.type == "cuda",
        visual_engine=visual.engine,
        **recipe,
    )
    return visual, audio, config


def _check_recipe_extra(recipe: dict[str, str]) -> None:
    """The AVE recipe's resize and resampler come from the ``ave`` extra: fail before decoding anything."""
    if recipe.get("frame_resize") == "opencv-linear" or recipe.get("audio_framing") == "ave-clip":
        require_ave_extra()


def build_encoders_for(
    config: ExtractorConfig,
    vgg_weights: str | None = None,
    vggish_weights: str | None = None,
    device: str | torch.device | None = None,
    engine: str = "auto",
) -> tuple[VisualEncoder, AudioEncoder, ExtractorConfig]:
    """Rebuild exactly the extractor ``config`` records; UserError if that is impossible here.

    Random backbones are rebuilt from their seeds; pretrained ones are resolved
    as usual and their file identity must equal the recorded one. The engine is this
    machine's choice (``engine``), not the recorded one: exact engines compute the same maps.
    """
    reference = ExtractorConfig()
    for name in ("visual_backbone", "sample_rate", "frame_size", "pipeline_version"):
        if getattr(config, name) != getattr(reference, name):
            raise UserError(
                f"features were extracted with {name}={getattr(config, name)!r}; this avepipe "
                f"(pipeline version {PIPELINE_VERSION}) extracts {name}={getattr(reference, name)!r}"
            )
    backend = {name: key for key, name in _AUDIO_BACKBONE_NAMES.items()}.get(config.audio_backbone)
    if backend is None:
        raise UserError(f"unknown audio backbone {config.audio_backbone!r} in extractor config")
    _check_choices(config.visual_preset, backend)
    recipe = {name: getattr(config, name) for name in AVE_RECIPE}
    _check_recipe_extra(recipe)
    audio, audio_id = _audio(
        backend, vggish_weights, _parse_random(config.audio_weights), device, config.audio_weights
    )
    visual, visual_id = _visual(
        config.visual_preset, vgg_weights, _parse_random(config.visual_weights), device,
        config.visual_precision, engine, config.visual_weights
    )
    rebuilt = ExtractorConfig(
        visual_preset=config.visual_preset,
        visual_weights=visual_id,
        audio_backbone=config.audio_backbone,
        audio_weights=audio_id,
        fps=config.fps,
        segments=config.segments,
        visual_precision=config.visual_precision,
        tf32=config.tf32,
        visual_engine=visual.engine,
        **recipe,
    )
    # e.g. a tfhub config recording other weights than google/vggish/1
    require_same_extractor(rebuilt, config, "rebuilt extractor", "the recorded one", ("rebuilt", "recorded"),
                           "cannot rebuild the recorded extractor; give the weight files it was made with")
    return visual, audio, rebuilt
