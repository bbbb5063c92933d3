"""What made a cache: the extractor identity that training and localisation must match.

Two caches whose ``ExtractorConfig`` differ in any identity field hold features
from different functions of the video, so mixing them silently changes results.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

from avepipe.errors import UserError

PIPELINE_VERSION = "1"

# Fields that describe storage or bookkeeping, not the feature function. The engine: every exact
# engine's maps are within 1e-5 of fp32 (tests/test_cpu_engine.py), so caches of the same
# extractor made by different engines combine; reduced precision is ``visual_precision``, identity.
_NOT_IDENTITY: frozenset[str] = frozenset({"visual_engine"})


@dataclass(frozen=True)
class ExtractorConfig:
    """Identity of the feature extractor, recorded in every cache and checkpoint."""

    visual_backbone: str = "vgg19-pool5"
    visual_preset: str = "torchvision"          # "torchvision" or "ave" (Keras/Caffe)
    visual_weights: str = "random:0"            # "torchvision:...", "keras-md5:<md5>", "sha256:<hex>", "random:<seed>"
    audio_backbone: str = "vggish-torch"        # "vggish-torch" or "vggish-tfhub"
    audio_weights: str = "random:0"             # "sha256:<hex>", "tfhub:google/vggish/1" or "random:<seed>"
    fps: int = 16
    sample_rate: int = 16000
    frame_size: int = 224
    visual_precision: str = "fp32"              # VGG-19 compute precision: "fp32", "bf16" or "fp16" (autocast)
    segments: int | None = None                 # fixed T, or None for the preset's own count
    # The recipe: which frames, how they are resized, how audio becomes examples. The defaults are
    # the default preset's; a cache recorded before these fields existed is read with them, which
    # is what every preset did then.
    frame_sampling: str = "pts"                 # "pts" (t + k/fps by PTS) or "ave-index" (AVE frame indices)
    frame_resize: str = "ffmpeg-bilinear"       # "ffmpeg-bilinear" (FFmpeg's scaler) or "opencv-linear" (cv2.resize)
    audio_framing: str = "per-second"           # "per-second" (16 kHz, one example per second) or "ave-clip"
    tf32: bool = False                          # TF32 matmuls/convolutions allowed on CUDA
    # What ran VGG-19 (extract/cpu_engine.py): bookkeeping, so == and ``differences`` ignore it.
    visual_engine: str = field(default="torch-eager", compare=False)
    pipeline_version: str = PIPELINE_VERSION

    @property
    def is_random(self) -> bool:
        """True when either backbone was randomly initialised (smoke tests, demos)."""
        return self.visual_weights.startswith("random") or self.audio_weights.startswith("random")

    def to_json(self) -> str:
        """Sorted JSON; fields added after version 1 are written only when they differ from their default.

        So a default extractor writes the JSON earlier versions wrote, and they can still
        read it (their ``from_json`` refuses unknown fields); reading fills the defaults back.
        """
        data = asdict(self)
        for name in _ADDED_AFTER_V1:
            if data[name] == _DEFAULTS[name]:
                del data[name]
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ExtractorConfig":
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown extractor fields {sorted(unknown)} (made by a newer avepipe?)")
        return cls(**data)

    def differences(self, other: "ExtractorConfig") -> list[str]:
        """Human-readable list of identity fields in which two configs differ."""
        out = []
        for f in fields(self):
            if f.name in _NOT_IDENTITY:
                continue
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if mine != theirs:
                out.append(f"{f.name}: {mine!r} vs {theirs!r}")
        stale = [c for c in (self, other) if c.predates_ave_recipe]
        if out and stale:
            out.append("a cache made with --preset ave, or imported from the released AVE files, before avepipe "
                       "reproduced the AVE recipe (frame sampling, resize, audio framing) describes features of "
                       "another recipe: re-extract or re-import it")
        return out

    @property
    def predates_ave_recipe(self) -> bool:
        """An ``ave``-preset config with the default recipe: what ``--preset ave`` recorded before it had its own."""
        return self.visual_preset == "ave" and all(getattr(self, name) == _DEFAULTS[name] for name in AVE_RECIPE)


_ADDED_AFTER_V1 = ("frame_sampling", "frame_resize", "audio_framing", "tf32", "visual_engine")
_DEFAULTS = {f.name: f.default for f in fields(ExtractorConfig)}


def require_same_extractor(ours: ExtractorConfig, theirs: ExtractorConfig, where: str, than: str,
                           labels: tuple[str, str], hint: str) -> None:
    """The one extractor-mismatch error: features of two extractors must never meet silently.

    ``where`` names the file at fault, ``than`` what it was compared with; the
    differing fields are listed as ``labels[0]`` value vs ``labels[1]`` value.
    """
    differences = ours.differences(theirs)
    if differences:
        raise UserError(f"{where}: features from a different extractor than {than} "
                        f"({labels[0]} vs {labels[1]}: {'; '.join(differences)}); {hint}")


# md5 of keras-applications' `vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`
# (the `file_hash` Keras itself checks); a file with this hash is the canonical one.
KERAS_VGG19_NOTOP_MD5 = "253f8cb515780f3b799900260a226db6"

# The recipe of ``--preset ave``: AVE's frame indices, OpenCV's resize, VGGish examples of whole clips.
AVE_RECIPE = {"frame_sampling": "ave-index", "frame_resize": "opencv-linear", "audio_framing": "ave-clip"}

# The released AVE features: Keras VGG-19 (canonical ImageNet notop weights) with
# Caffe preprocessing, and the official TensorFlow VGGish, 16 frames per second,
# 10 one-second segments, made with the AVE recipe. `--preset ave --segments 10
# --audio-backend tfhub` with the canonical files records exactly this, so
# self-extracted and imported AVE caches can be trained on side by side.
AVE_RELEASED = ExtractorConfig(
    visual_backbone="vgg19-pool5",
    visual_preset="ave",
    visual_weights=f"keras-md5:{KERAS_VGG19_NOTOP_MD5}",
    audio_backbone="vggish-tfhub",
    audio_weights="tfhub:google/vggish/1",
    fps=16,
    sample_rate=16000,
    frame_size=224,
    segments=10,
    **AVE_RECIPE,
)
