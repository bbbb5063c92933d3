"""Where backbone weights come from, and how a weights file is identified.

Order: explicit path -> environment variable -> the library's own cache,
downloading into it when online. No other source, and offline without a file is
one clear UserError. The identity string of the file used (hash) goes into the
cache's provenance so features from different weights are never mixed.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from avepipe.errors import ARGUMENT, UserError
from avepipe.extract.provenance import KERAS_VGG19_NOTOP_MD5

RANDOM_HINT = "or run with --random-backbones SEED for a smoke test with random weights"


@dataclass(frozen=True)
class WeightsFile:
    """One pretrained weights file: its canonical name, source and how users point at it
    (``argument``: the keyword of ``build_encoders`` that gives the file; a command's option of
    that name shows in its messages)."""

    description: str
    filename: str
    url: str
    argument: str
    env_var: str
    cache_dir: Callable[[], Path]
    # sha256 prefix torch.hub embeds in the file name and checks on download.
    hash_prefix: str | None = None
    # Identity string recorded when the file is the canonical one.
    canonical_id: str | None = None
    canonical_md5: str | None = None

    @property
    def cache_path(self) -> Path:
        return self.cache_dir() / self.filename


def _torch_hub_checkpoints() -> Path:
    """torch.hub's (and torchvision's) download folder; honours TORCH_HOME."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _keras_models() -> Path:
    """Keras' download folder ``~/.keras/models``; honours KERAS_HOME like Keras does."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


TORCHVISION_VGG19 = WeightsFile(
    description="VGG-19 ImageNet weights (torchvision IMAGENET1K_V1)",
    filename="vgg19-dcbb9e9d.pth",
    url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
    argument="vgg_weights",
    env_var="AVEPIPE_VGG19_WEIGHTS",
    cache_dir=_torch_hub_checkpoints,
    hash_prefix="dcbb9e9d",
    canonical_id="torchvision:IMAGENET1K_V1",
)
KERAS_VGG19_NOTOP = WeightsFile(
    description="Keras VGG-19 ImageNet notop weights (--preset ave)",
    filename="vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
    url=(
        "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
        "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
    ),
    argument="vgg_weights",
    env_var="AVEPIPE_KERAS_VGG19_WEIGHTS",
    cache_dir=_keras_models,
    canonical_md5=KERAS_VGG19_NOTOP_MD5,
)
VGGISH = WeightsFile(
    description="VGGish weights (pytorch_vggish.pth layout, torchvggish release)",
    filename="vggish-10086976.pth",
    url="https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth",
    argument="vggish_weights",
    env_var="AVEPIPE_VGGISH_WEIGHTS",
    cache_dir=_torch_hub_checkpoints,
)


def short_reason(exc: BaseException) -> str:
    """First line of an exception, so user-facing errors stay one line."""
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0]}" if text else exc.__class__.__name__


def download_file(url: str, destination: Path, hash_prefix: str | None) -> None:
    """torch.hub's downloader: temp file + rename, so an interrupted download leaves nothing behind."""
    torch.hub.download_url_to_file(url, str(destination), hash_prefix=hash_prefix, progress=True)


def _existing(path_text: str, spec: WeightsFile, given_by: str) -> Path:
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise UserError(f"{path}: {spec.description} file not found (given by {given_by})", spec.argument)
    return path


def resolve_weights(spec: WeightsFile, explicit: str | Path | None = None) -> Path:
    """Path of the weights file: explicit path, then env var, then cache (downloading if needed)."""
    if explicit:
        return _existing(str(explicit), spec, ARGUMENT)
    from_env = os.environ.get(spec.env_var)
    if from_env:
        return _existing(from_env, spec, spec.env_var)
    cached = spec.cache_path
    if cached.is_file():
        return cached
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        download_file(spec.url, cached, spec.hash_prefix)
    except Exception as exc:
        raise UserError(
            f"{spec.description} file {spec.filename} is missing and could not be downloaded "
            f"({short_reason(exc)}): put it at {cached}, or pass {ARGUMENT} PATH, or set "
            f"{spec.env_var}=PATH, {RANDOM_HINT}", spec.argument
        ) from exc
    return cached


def file_digest(path: str | Path, algorithm: str) -> str:
    """Hex digest of a file, streamed in 1 MiB blocks (weights files are hundreds of MB)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_identity(spec: WeightsFile, path: str | Path) -> str:
    """Provenance string of a weights file: its canonical name when it is the canonical file, else its sha256."""
    if spec.canonical_md5 is not None:
        md5 = file_digest(path, "md5")
        if md5 == spec.canonical_md5:
            return f"keras-md5:{md5}"
    sha256 = file_digest(path, "sha256")
    if spec.canonical_id is not None and spec.hash_prefix and sha256.startswith(spec.hash_prefix):
        return spec.canonical_id
    return f"sha256:{sha256}"
