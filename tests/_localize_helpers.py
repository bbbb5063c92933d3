"""Helpers for the localize tests: known-content videos, a transparent extractor and model, a schema checker.

The "red and loud" model labels a second as the event exactly when its frames
are red and its audio is loud, so the right answer for any generated video is
known without training anything.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from avepipe.data.video_writer import tone, write_test_video
from avepipe.extract.provenance import ExtractorConfig
from avepipe.models.base import EventNetwork
from avepipe.models.outputs import ModelOutput

RED, GREY = (220, 20, 20), (90, 90, 90)
CLASSES = ["beep", "background"]
SOURCE_FPS = 4


def write_video(path: Path, red: list[bool], loud: list[bool] | None, size=(64, 48)) -> Path:
    """A video whose second t is red or grey and (unless ``loud`` is None: no audio stream) loud or silent."""
    width, height = size
    frames = np.concatenate([np.broadcast_to(np.array(RED if r else GREY, np.uint8), (SOURCE_FPS, height, width, 3))
                             for r in red])
    audio = None
    if loud is not None:
        audio = np.concatenate([tone(440, 1.0) if is_loud else np.zeros(16000, np.float32) for is_loud in loud])
    return write_test_video(path, frames, SOURCE_FPS, audio=audio)


class _CellColours(nn.Module):
    """[N, 3, 224, 224] in 0..1 -> [N, 512, 7, 7]: the mean R, G, B of each 32x32 cell in channels 0..2."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        cells = nn.functional.avg_pool2d(images, 32)
        return torch.cat([cells, cells.new_zeros(len(cells), 509, 7, 7)], dim=1)


def colour_encoder():
    """A real ``VisualEncoder`` whose 'CNN' is transparent: pool5-shaped maps of cell colours."""
    from avepipe.extract.backbones import VisualEncoder

    return VisualEncoder(_CellColours(), lambda frames: frames.permute(0, 3, 1, 2).float() / 255.0, "cpu", 8)


class LoudnessEncoder:
    """Audio 'backbone': feature 0 of second t is the RMS of samples [16000 t, 16000 (t+1))."""

    def encode(self, waveform: np.ndarray, segments: int) -> np.ndarray:
        padded = np.zeros(segments * 16000, np.float32)
        usable = waveform[: segments * 16000]
        padded[: len(usable)] = usable
        out = np.zeros((segments, 128), np.float32)
        out[:, 0] = np.sqrt((padded.reshape(segments, 16000) ** 2).mean(axis=1))
        return out


class RedAndLoudNet(EventNetwork):
    """Event (class 0) where the frame is red and the second loud; PSP-like outputs that are easy to check."""

    model_name = "psp"

    def __init__(self):
        super().__init__(num_classes=1)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> ModelOutput:
        rgb = visual[..., :3].mean(dim=(2, 3))                       # [B, T, 3]
        red = rgb[..., 0] - rgb[..., 1:].max(dim=-1).values > 0.3    # [B, T]
        loud = audio[..., 0] > 0.05
        event = torch.where(red & loud, 4.0, -4.0)
        logits = torch.stack([event, torch.zeros_like(event)], dim=-1)
        level = audio[..., 0]
        gamma = level[:, :, None] * level[:, None, :]
        gamma = gamma / (gamma.sum(-1, keepdim=True) + 1e-8)
        redness = (visual[..., 0] - visual[..., 1]).clamp(min=0) + 1e-6  # [B, T, 7, 7]
        attention = redness / redness.sum(dim=(2, 3), keepdim=True)
        return ModelOutput(logits=logits, gamma_va=gamma, gamma_av=gamma.transpose(1, 2), attention=attention)


def red_and_loud_localizer(segments: int = 10, extractor: ExtractorConfig = ExtractorConfig(fps=2)):
    from avepipe.localizer import Localizer

    return Localizer(RedAndLoudNet(), colour_encoder(), LoudnessEncoder(), extractor, CLASSES,
                     segments=segments, device="cpu")


def seconds_of(labels: list[str], label: str = "beep") -> list[int]:
    return [t for t, name in enumerate(labels) if name == label]


def check_png(path: Path, min_size: tuple[int, int] = (200, 100)) -> np.ndarray:
    """Open ``path`` as a PNG and check it is a real picture: big enough and not one flat colour."""
    with Image.open(path) as image:
        assert image.format == "PNG", f"{path} is {image.format}"
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    assert pixels.shape[1] >= min_size[0] and pixels.shape[0] >= min_size[1], pixels.shape
    assert pixels.std() > 10.0, f"{path} is (nearly) blank: pixel std {pixels.std():.2f}"
    return pixels


def schema_errors(value, schema: dict, where: str = "$") -> list[str]:
    """The subset of JSON Schema the localize schema uses: type, const, required, properties,
    additionalProperties, items, minItems, minimum, maximum. Returns every violation found."""
    errors: list[str] = []
    types = schema.get("type")
    if types is not None:
        allowed = [types] if isinstance(types, str) else types
        if not any(_is_type(value, t) for t in allowed):
            return [f"{where}: {type(value).__name__} is not {types}"]
    if "const" in schema and value != schema["const"]:
        errors.append(f"{where}: {value!r} != {schema['const']!r}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{where}: missing {key!r}")
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                errors += schema_errors(item, properties[key], f"{where}.{key}")
            elif extra is False:
                errors.append(f"{where}: unexpected {key!r}")
            elif isinstance(extra, dict):
                errors += schema_errors(item, extra, f"{where}.{key}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{where}: fewer than {schema['minItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                errors += schema_errors(item, schema["items"], f"{where}[{i}]")
    if _is_type(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{where}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{where}: {value} > {schema['maximum']}")
    return errors


def _is_type(value, name: str) -> bool:
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, {"string": str, "object": dict, "array": list}[name])
