"""The Python API: a raw video in, its audio-visual events out.

``Localizer.from_checkpoint(path)`` rebuilds the model and exactly the feature
extractor recorded in the checkpoint (features from any other extractor are a
different function of the video, and the model's answers on them are
meaningless). ``localize(video)`` extracts, runs the model over overlapping
windows of the training length and returns typed results. With a sound-source
checkpoint as well (same extractor: features are extracted once for both), each
event second also gets the peak of its sound-source map.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from avepipe.device import select_device
from avepipe.errors import UserError
from avepipe.results import Interval, LocalizationResult, SegmentPrediction
from avepipe.windows import average_window_matrices, average_window_scores

# AVE clips are 10 s; checkpoints that do not record their training length were trained on them.
DEFAULT_TRAIN_SEGMENTS = 10
NO_AUDIO_NOTE = ("no audio stream: an audio-visual event must be audible, "
                 "so every second is background (the model was not consulted)")


def class_names_with_background(names: list[str], num_outputs: int) -> list[str]:
    """Checkpoint class names, with "background" appended when only the events were recorded."""
    names = list(names)
    if len(names) == num_outputs - 1:
        names.append("background")
    if len(names) != num_outputs:
        raise ValueError(f"checkpoint has {len(names)} class names for {num_outputs} outputs")
    return names


def train_segments(extractor, extra: dict | None) -> int:
    """The clip length the model was trained on: recorded by training, else the extractor's fixed T, else AVE's 10."""
    extra = extra or {}
    for key in ("train_segments", "segments"):
        if extra.get(key):
            return int(extra[key])
    return int(extractor.segments or DEFAULT_TRAIN_SEGMENTS)


def second_thumbnails(video_path: str | Path, segments: int, size: int) -> np.ndarray:
    """``[segments, size, size, 3]`` uint8: the frame shown at the middle of each second.

    A second, cheap decode (2 targets per second, converted straight to ``size``):
    the extraction pipeline does not hand its frames back, and keeping its
    224x224 frames would make memory grow with the video's length.
    """
    from avepipe.extract.decode import decode_video
    from avepipe.extract.sampling import frame_for_targets

    video = decode_video(video_path, fps=2, size=size, max_time=float(segments))
    return video.frames[frame_for_targets(video.pts, np.arange(segments) + 0.5)]


class Localizer:
    """A trained model plus its own feature extractor, ready to localise events in raw videos.

    ``source_model`` (optional, a ``SoundSourceLocalizer`` on the same extractor) adds where
    the sound comes from in each event second.
    """

    def __init__(self, net, visual_encoder, audio_encoder, extractor, class_names: list[str],
                 segments: int, device: str, stride: int | None = None, window_batch: int = 16,
                 source_model: torch.nn.Module | None = None):
        self.net = net.eval()
        self.source_model = None if source_model is None else source_model.eval()
        self.visual_encoder = visual_encoder
        self.audio_encoder = audio_encoder
        self.extractor = extractor
        self.class_names = class_names
        self.background = len(class_names) - 1
        self.segments = segments
        self.stride = stride or max(1, segments // 2)
        self.device = device
        self.window_batch = window_batch

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | None = None, vgg_weights: str | None = None,
                        vggish_weights: str | None = None, source_checkpoint: str | Path | None = None) -> "Localizer":
        """Load a checkpoint directory and build the extractor it records (same backbones, weights, fps).

        ``source_checkpoint`` (a sound-source checkpoint) must record the same extractor.
        """
        from avepipe.extract.backbones import build_encoders_for
        from avepipe.extract.provenance import require_same_extractor
        from avepipe.models.checkpoint import load_checkpoint

        device = select_device(device)
        net, info = load_checkpoint(path, device=device, hint="give it as --source-checkpoint")
        source_model = None
        if source_checkpoint is not None:
            source_model, source_info = load_checkpoint(source_checkpoint, device=device, task="source",
                                                        hint="give it as -c/--checkpoint")
            require_same_extractor(source_info.extractor, info.extractor, str(source_checkpoint), str(path),
                                   ("source", "event"), "both must read the same features")
        visual, audio, extractor = build_encoders_for(info.extractor, vgg_weights=vgg_weights,
                                                      vggish_weights=vggish_weights, device=device)
        names = class_names_with_background(info.class_names, net.num_classes + 1)
        return cls(net, visual, audio, extractor, names, train_segments(info.extractor, info.extra), device,
                   source_model=source_model)

    def localize(self, video_path: str | Path, explain: bool = False, thumbnails: bool = False,
                 thumbnail_size: int = 96) -> LocalizationResult:
        """Localise the events of one video.

        ``explain`` adds the PSP connection matrices and AVGA attention maps;
        ``thumbnails`` (implied by ``explain``) keeps one small frame per second
        for pictures. Raises ``UserError`` for a file that cannot be decoded.
        With a ``source_model``, event seconds get their sound-source peak.
        """
        from avepipe.extract.decode import display_size
        from avepipe.extract.pipeline import extract_video

        # The whole video, whatever fixed T the features were trained with: windows of the training
        # length cover it (an imported AVE checkpoint records T = 10, which would crop it).
        whole = replace(self.extractor, segments=None)
        features = extract_video(Path(video_path), self.visual_encoder, self.audio_encoder, whole)
        result = self.localize_features(features, explain=explain)
        if self.source_model is not None and features.has_audio:
            self.add_source_peaks(result, features, display_size(video_path))
        if thumbnails or explain:
            result.thumbnails = second_thumbnails(video_path, features.segments, thumbnail_size)
        return result

    def add_source_peaks(self, result: LocalizationResult, features, frame_size: tuple[int, int]) -> None:
        """Sound-source maps of every second, and the peak (pixels of ``frame_size``) of each event second."""
        from avepipe.source.api import source_maps
        from avepipe.source.metrics import peak_position

        result.source_maps = source_maps(self.source_model, features, self.device)
        result.frame_size = frame_size
        background = self.class_names[self.background]
        for segment in result.segments:
            if segment.label != background and segment.second < len(result.source_maps):
                x, y = peak_position(result.source_maps[segment.second], frame_size)
                segment.source_peak = (round(x, 1), round(y, 1))

    def localize_features(self, features, explain: bool = False) -> LocalizationResult:
        """Localise from already extracted ``VideoFeatures`` (e.g. read from a cache)."""
        length = features.segments
        explain_parts = _ExplainParts(length) if explain else None
        audio = torch.from_numpy(np.ascontiguousarray(features.audio, dtype=np.float32))
        visual = torch.from_numpy(np.ascontiguousarray(features.visual, dtype=np.float32))

        def score_windows(starts: list[int], size: int) -> np.ndarray:
            a = torch.stack([audio[s:s + size] for s in starts]).to(self.device)
            v = torch.stack([visual[s:s + size] for s in starts]).to(self.device)
            with torch.inference_mode():
                out = self.net(a, v)
                if explain_parts is not None:
                    explain_parts.add(starts, out)
                return self.net.segment_scores(out).float().cpu().numpy()

        scores = torch.from_numpy(average_window_scores(score_windows, length, self.segments, self.stride,
                                                        self.window_batch))
        with torch.inference_mode():
            labels, confidence = self.net.predict_from_scores(scores[None])
            probabilities = self.net.class_probabilities(scores).numpy()
        labels, confidence = labels[0].numpy(), confidence[0].numpy()
        notes = list(features.notes)
        if not features.has_audio:
            labels = np.full(length, self.background)
            confidence = np.ones(length, dtype=np.float32)
            notes.append(NO_AUDIO_NOTE)
        return self._result(features, labels, confidence, probabilities, notes, explain_parts)

    def _result(self, features, labels, confidence, probabilities, notes, explain_parts) -> LocalizationResult:
        from avepipe.metrics import merge_intervals

        segments = [
            SegmentPrediction(second=t, label=self.class_names[int(labels[t])], confidence=float(confidence[t]),
                              probabilities=None if not features.has_audio else
                              {name: float(p) for name, p in zip(self.class_names, probabilities[t])})
            for t in range(len(labels))
        ]
        intervals = [Interval(start=float(i.start), end=float(min(i.end, max(features.duration, i.start + 1))),
                              label=self.class_names[i.label], mean_confidence=float(i.confidence))
                     for i in merge_intervals(labels, confidence, self.background)]
        result = LocalizationResult(video=features.video_id, duration=float(features.duration),
                                    has_audio=bool(features.has_audio), segments=segments, intervals=intervals,
                                    notes=notes)
        if explain_parts is not None:
            result.gamma_va, result.gamma_av, result.attention = explain_parts.finish()
        return result


class _ExplainParts:
    """Collects the per-window matrices and attention maps of one video for ``explain``."""

    def __init__(self, length: int):
        self.length = length
        self.gamma_va: list[tuple[int, np.ndarray]] = []
        self.gamma_av: list[tuple[int, np.ndarray]] = []
        self.attention_sum = np.zeros((length, 7, 7), dtype=np.float64)
        self.attention_count = np.zeros(length, dtype=np.float64)

    def add(self, starts: list[int], out) -> None:
        for i, start in enumerate(starts):
            if out.gamma_va is not None:
                self.gamma_va.append((start, out.gamma_va[i].float().cpu().numpy()))
                self.gamma_av.append((start, out.gamma_av[i].float().cpu().numpy()))
            if out.attention is not None:
                maps = out.attention[i].float().cpu().numpy()
                self.attention_sum[start:start + len(maps)] += maps
                self.attention_count[start:start + len(maps)] += 1

    def finish(self) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        gamma_va = average_window_matrices(self.gamma_va, self.length) if self.gamma_va else None
        gamma_av = average_window_matrices(self.gamma_av, self.length) if self.gamma_av else None
        attention = None
        if self.attention_count.any():
            attention = (self.attention_sum / np.maximum(self.attention_count, 1)[:, None, None]).astype(np.float32)
        return gamma_va, gamma_av, attention
