"""One video as a stream of small messages, so no stage ever holds a whole video's frames.

Order: ``AudioPart`` (the waveform, aligned to the video's start), then ``FramePart``s
(the distinct selected frames and which sampling targets each one serves), then
``VideoEnd`` (duration, segment count, notes) -- or ``VideoFailed`` at any point.
The same generator runs in decoder worker processes (messages cross a queue) and
in-process (``--workers 0``, ``extract_video``), so both paths give the same features.
Which frames and which audio follow the config's recipe: PTS-timed frames and per-second
audio by default, the AVE frame indices and whole-clip audio for ``--preset ave``.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avepipe.extract.ave_recipe import ave_clip_waveforms
from avepipe.extract.decode import (DecodeError, IndexedFrames, SelectedFrames, decode_audio_pcm16,
                                    decode_audio_with_notes, frame_converter, reader_count)
from avepipe.extract.provenance import ExtractorConfig
from avepipe.extract.sampling import ave_frame_indices, ave_segment_count, segment_count, target_time

# Distinct frames remembered per video for pixel-identical reuse (static shots, frames
# duplicated by re-encoding). Both ends keep exactly this many: the producer only refers
# to the last DEDUP_WINDOW distinct frames, the consumer keeps their maps (100 KB each).
DEDUP_WINDOW = 32
SAMPLE_STEP = 8  # every 8th row and column (28x28 of 224x224): a frame's cheap fingerprint
CHUNK_FRAMES = 8  # distinct frames per FramePart: 1.2 MB of pixels per message at 224x224


@dataclass
class AudioPart:
    key: int
    waveform: np.ndarray | None  # mono at the config's sample rate (float32; float64 for AVE framing); None: no audio
    notes: list[str] = field(default_factory=list)


@dataclass
class FramePart:
    """``pixels[i]`` is distinct frame ``first_ref + i``; ``uses`` are ``(ref, first_target, stop_target)``:
    targets ``first_target .. stop_target - 1`` of the whole-video grid show frame ``ref``."""

    key: int
    first_ref: int
    pixels: np.ndarray
    uses: list[tuple[int, int, int]]


@dataclass
class VideoEnd:
    key: int
    segments: int
    duration: float
    source_fps: float
    notes: list[str]
    display_size: tuple[int, int] | None = None  # (width, height) of the picture as shown


@dataclass
class VideoFailed:
    key: int
    reason: str  # one line for the user's summary
    error: BaseException | None = None  # the original error, in-process only (not sent between processes)


Message = AudioPart | FramePart | VideoEnd | VideoFailed


def failure_reason(error: BaseException) -> str:
    """A user-facing reason: decode errors are already one line; anything else gets its type named."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, DecodeError):
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class _FrameChunker:
    """Numbers distinct frames, reuses recent pixel-identical ones, and packs them into ``FramePart``s."""

    def __init__(self, key: int, chunk_frames: int) -> None:
        self.key, self.chunk_frames = key, chunk_frames
        self.recent: OrderedDict[int, tuple[bytes, np.ndarray]] = OrderedDict()  # ref -> (sample, pixels), oldest first
        self.next_ref = self.first_ref = 0
        self.pixels: list[np.ndarray] = []
        self.uses: list[tuple[int, int, int]] = []

    def add(self, rgb: np.ndarray, first_target: int, stop_target: int) -> Iterator[FramePart]:
        if stop_target <= first_target:
            return  # kept by the decoder (e.g. the held last frame) but shown at no target
        sample = rgb[::SAMPLE_STEP, ::SAMPLE_STEP].tobytes()
        ref = self._seen(sample, rgb)
        if ref is None:
            ref, self.next_ref = self.next_ref, self.next_ref + 1
            self.recent[ref] = sample, rgb
            if len(self.recent) > DEDUP_WINDOW:
                self.recent.popitem(last=False)
            self.pixels.append(rgb)
        self.uses.append((ref, first_target, stop_target))
        if len(self.pixels) >= self.chunk_frames:
            yield self.flush()

    def _seen(self, sample: bytes, rgb: np.ndarray) -> int | None:
        """The ref of a recent frame with exactly these pixels: the sparse sample rules out (almost) every
        other frame at a fraction of the cost of hashing all pixels, the full comparison decides."""
        for ref, (seen_sample, seen) in self.recent.items():
            if seen_sample == sample and np.array_equal(seen, rgb):
                return ref
        return None

    def flush(self) -> FramePart:
        part = FramePart(self.key, self.first_ref,
                         np.stack(self.pixels) if self.pixels else np.zeros((0, 0, 0, 3), np.uint8), self.uses)
        self.first_ref, self.pixels, self.uses = self.next_ref, [], []
        return part


def video_messages(path: str | Path, key: int, config: ExtractorConfig,
                   chunk_frames: int = CHUNK_FRAMES) -> Iterator[Message]:
    """The messages of one video (see module docstring); raises ``DecodeError`` for a bad file."""
    if config.frame_sampling == "ave-index":
        yield from _indexed_messages(path, key, config, chunk_frames)
    elif config.frame_sampling == "pts":
        yield from _pts_messages(path, key, config, chunk_frames)
    else:
        raise ValueError(f"unknown frame sampling {config.frame_sampling!r}")


def _audio_part(path: str | Path, key: int, config: ExtractorConfig, start: float | None) -> AudioPart:
    """Per-second framing: mono 16 kHz from ``start``. AVE framing: 10-second blocks from the first sample."""
    if config.audio_framing == "ave-clip":
        pcm16 = decode_audio_pcm16(path)
        if pcm16 is not None:
            return AudioPart(key, ave_clip_waveforms(pcm16))
    elif config.audio_framing == "per-second":
        audio = decode_audio_with_notes(path, config.sample_rate, start=start)
        if audio is not None:
            return AudioPart(key, audio.waveform, audio.notes)
    else:
        raise ValueError(f"unknown audio framing {config.audio_framing!r}")
    return AudioPart(key, None, ["no audio stream: audio features are those of silence"])


def _indexed_messages(path: str | Path, key: int, config: ExtractorConfig, chunk_frames: int) -> Iterator[Message]:
    """The AVE recipe: frame indices from the header's frame count, T from its duration (``ave_frame_indices``)."""
    count = reader_count(path)
    segments = ave_segment_count(count.duration, config.segments)
    indices = ave_frame_indices(count.duration, count.rate, segments, config.fps, block_rate=count.exact_rate)
    yield _audio_part(path, key, config, start=None)
    chunker = _FrameChunker(key, chunk_frames)
    frames = IndexedFrames(path, indices, frame_converter(config.frame_resize, config.frame_size))
    for rgb, first, stop in frames:
        yield from chunker.add(rgb, first, stop)
    yield chunker.flush()
    yield VideoEnd(key, segments, count.duration, count.exact_rate, list(frames.notes), frames.display_size)


def _pts_messages(path: str | Path, key: int, config: ExtractorConfig, chunk_frames: int) -> Iterator[Message]:
    """Target k of the grid (time t + j/fps) takes the last selected frame with PTS <= its
    time, exactly as ``frame_for_targets`` does on the full list of selected frames; a
    frame's targets are known when the next frame's PTS is, the last frame's at the end.
    """
    fps = config.fps
    max_time = float(config.segments) if config.segments is not None else None
    limit = config.segments * fps if config.segments is not None else None
    selected = SelectedFrames(path, fps=fps, size=config.frame_size, max_time=max_time,
                              convert=frame_converter(config.frame_resize, config.frame_size))
    frames = iter(selected)
    previous = next(frames)  # sets selected.start, which the audio is aligned to
    yield _audio_part(path, key, config, start=selected.start)

    chunker = _FrameChunker(key, chunk_frames)
    cursor = 0
    for current in frames:
        stop = cursor
        while target_time(stop, fps) < current[1]:
            stop += 1
        stop = stop if limit is None else min(stop, limit)
        yield from chunker.add(previous[0], cursor, stop)
        cursor, previous = max(cursor, stop), current
    segments = segment_count(selected.duration, config.segments)
    yield from chunker.add(previous[0], cursor, segments * fps)
    yield chunker.flush()
    yield VideoEnd(key, segments, selected.duration, selected.source_fps, list(selected.notes),
                   selected.display_size)


def in_process_messages(videos: Iterable[tuple[int, Path]], config: ExtractorConfig) -> Iterator[Message]:
    """``video_messages`` of each video in turn, decoded in this process; bad files become ``VideoFailed``."""
    for key, path in videos:
        try:
            yield from video_messages(path, key, config)
        except Exception as error:  # one bad file must not stop the others
            yield VideoFailed(key, failure_reason(error), error)
