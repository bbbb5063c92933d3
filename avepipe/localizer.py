"""The Python API: a raw video in, its audio-visual events out.

``Localizer.from_checkpoint(path)`` rebuilds the model and exactly the feature
extractor recorded in the checkpoint (features from any other extractor are a
different function of the video, and the model's answers on them are
meaningless). ``localize(video)`` extracts, runs the model over overlapping
windows of the training length and returns typed results. With a sound-source
checkpoint as well (same extractor: features are extracted once for both), each
event second also gets the peak of its sound-source map. The video is decoded once:
the pictures' frames come from the extraction's own (``SecondThumbnails``).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from avepipe.device import select_device
from avepipe.extract.backbones import build_encoders_for
from avepipe.extract.pipeline import extract_video
from avepipe.extract.provenance import require_same_extractor
from avepipe.extract.thumbnails import SecondThumbnails
from avepipe.event.metrics import Interval, merge_intervals
from avepipe.models.checkpoint import load_checkpoint
from avepipe.results import LocalizationResult, SegmentPrediction, explain_kind
from avepipe.source.maps import source_maps
from avepipe.source.metrics import peak_position
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

        ``source_checkpoint`` (a sound-source checkpoint) must record the same extractor. A checkpoint
        of the other task raises ``WrongTaskError`` (its ``found`` says which task it holds).
        """
        device = select_device(device)
        net, info = load_checkpoint(path, device=device)
        source_model = None
        if source_checkpoint is not None:
            source_model, source_info = load_checkpoint(source_checkpoint, device=device, task="source")
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

        ``explain`` adds what the network's ``explain()`` returns (``result.explain``);
        ``thumbnails`` (implied by ``explain``) keeps one small frame per second
        for pictures. Raises ``UserError`` for a file that cannot be decoded.
        With a ``source_model``, event seconds get their sound-source peak.
        """
        pictures = thumbnails or explain
        # The whole video, whatever fixed T the features were trained with: windows of the training
        # length cover it (an imported AVE checkpoint records T = 10, which would crop it).
        whole = replace(self.extractor, segments=None)
        frames = SecondThumbnails(whole.fps, thumbnail_size if pictures else None)
        features = extract_video(Path(video_path), self.visual_encoder, self.audio_encoder, whole, tap=frames)
        result = self.localize_features(features, explain=explain)
        if self.source_model is not None and features.has_audio:
            self.add_source_peaks(result, features, frames.display_size)
        if pictures:
            result.thumbnails = frames.thumbnails(features.segments)
        return result

    def add_source_peaks(self, result: LocalizationResult, features, frame_size: tuple[int, int]) -> None:
        """Sound-source maps of every second, and the peak (pixels of ``frame_size``) of each event second."""
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
        explain_parts = _ExplainParts(self.net, length) if explain else None
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
        segments = [
            SegmentPrediction(second=t, label=self.class_names[int(labels[t])], confidence=float(confidence[t]),
                              probabilities=None if not features.has_audio else
                              {name: float(p) for name, p in zip(self.class_names, probabilities[t])})
            for t in range(len(labels))
        ]
        intervals = [Interval(start=float(i.start), end=float(min(i.end, max(features.duration, i.start + 1))),
                              label=self.class_names[i.label], confidence=float(i.confidence))
                     for i in merge_intervals(labels, confidence, self.background)]
        result = LocalizationResult(video=features.video_id, duration=float(features.duration),
                                    has_audio=bool(features.has_audio), segments=segments, intervals=intervals,
                                    notes=notes)
        if explain_parts is not None:
            result.explain = explain_parts.finish()
        return result


class _ExplainParts:
    """Collects what ``net.explain(out)`` returns for every window of one video, averaged per video.

    Segment matrices go through ``average_window_matrices`` (NaN where two seconds never
    shared a window); per-second arrays (maps, values) are averaged over the windows
    holding each second.
    """

    def __init__(self, net, length: int):
        self.net, self.length = net, length
        self.names: list[str] = []          # in the order explain() gives them
        self.matrices: dict[str, list[tuple[int, np.ndarray]]] = {}
        self.sums: dict[str, np.ndarray] = {}
        self.counts: dict[str, np.ndarray] = {}

    def add(self, starts: list[int], out) -> None:
        for name, value in self.net.explain(out).items():
            windows = value.float().cpu().numpy()
            if name not in self.names:
                self.names.append(name)
            for start, window in zip(starts, windows):
                if explain_kind(window) == "matrix":
                    self.matrices.setdefault(name, []).append((start, window))
                    continue
                if name not in self.sums:
                    self.sums[name] = np.zeros((self.length, *window.shape[1:]), dtype=np.float64)
                    self.counts[name] = np.zeros(self.length, dtype=np.float64)
                self.sums[name][start:start + len(window)] += window
                self.counts[name][start:start + len(window)] += 1

    def finish(self) -> dict[str, np.ndarray]:
        return {name: self._average(name) for name in self.names}

    def _average(self, name: str) -> np.ndarray:
        if name in self.matrices:
            return average_window_matrices(self.matrices[name], self.length)
        total = self.sums[name]
        count = np.maximum(self.counts[name], 1).reshape(-1, *([1] * (total.ndim - 1)))
        return (total / count).astype(np.float32)
