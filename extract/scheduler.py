"""The main-process side: video messages in, CNN batches across videos, finished videos out.

Each video in flight is a ``VideoAssembly`` holding only running per-segment sums: a
segment's mean map is final as soon as its ``fps`` targets are summed, so memory is
bounded by the batch and the queues, not by the video's length (a 600 s video at 16
frames/s would otherwise hold 1.4 GB of frames). The output itself, ``[T, 7, 7, 512]``
float32 (100 KB per second of video), is the only part that grows with T.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from avepipe.extract.batching import FrameBatcher, cuda_fp32
from avepipe.extract.features import AUDIO_SHAPE, VideoFeatures
from avepipe.extract.logmel import EXAMPLE_HOP
from avepipe.extract.provenance import ExtractorConfig
from avepipe.extract.sampling import AVE_CLIP_SECONDS
from avepipe.extract.stream import (DEDUP_WINDOW, AudioPart, FramePart, Message, VideoEnd, VideoFailed,
                            failure_reason)

AUDIO_BLOCK_SEGMENTS = 64  # seconds of audio per AudioEncoder call: bounds the log-mel memory


def encode_audio_rows(audio_encoder, waveform: np.ndarray, config: ExtractorConfig) -> np.ndarray:
    """``[S, 128]`` for the S whole-or-partial seconds of ``waveform`` (at most ``config.segments``), in blocks.

    Per-second framing: exact, not an approximation: every segment's example is
    computed from its own second of samples alone (``log_mel_examples``), so blocks
    give the same rows. AVE framing: the waveform is 10-second clips end to end
    (``ave_clip_waveforms``), each framed on its own at hop 0.96 s, as the recipe does.
    """
    sample_rate, limit = config.sample_rate, config.segments
    # Only the AVE framing passes ``hop``: an encoder that does not know it still serves the default.
    block, framing = ((AVE_CLIP_SECONDS, {"hop": EXAMPLE_HOP}) if config.audio_framing == "ave-clip"
                      else (AUDIO_BLOCK_SEGMENTS, {}))
    seconds = -(-len(waveform) // sample_rate)
    seconds = seconds if limit is None else min(seconds, limit)
    rows = [np.zeros((0, *AUDIO_SHAPE), np.float32)]
    with cuda_fp32(config.tf32):
        for first in range(0, seconds, block):
            count = min(block, seconds - first)
            chunk = waveform[first * sample_rate:(first + block) * sample_rate]
            rows.append(np.asarray(audio_encoder.encode(chunk, count, **framing), dtype=np.float32))
    return np.concatenate(rows)


class VideoAssembly:
    """One video's features, built from its messages and from the maps of its frames as they arrive."""

    def __init__(self, video_id: str, config: ExtractorConfig, audio_encoder, audio: AudioPart) -> None:
        self.video_id, self.config, self.audio_encoder = video_id, config, audio_encoder
        self.has_audio = audio.waveform is not None
        self.audio_notes = list(audio.notes)
        waveform = audio.waveform if audio.waveform is not None else np.zeros(0, np.float32)
        self.audio_rows = encode_audio_rows(audio_encoder, waveform, config)
        self.waiting: dict[int, list[tuple[int, int]]] = {}  # ref -> target ranges, map not yet computed
        self.maps: dict[int, np.ndarray] = {}                # the last DEDUP_WINDOW computed maps
        self.sums: dict[int, np.ndarray] = {}                # segment -> float64 sum of its targets' maps
        self.filled: dict[int, int] = {}                     # segment -> targets summed so far
        self.finished: dict[int, np.ndarray] = {}            # segment -> mean map, float32
        self.end: VideoEnd | None = None

    @property
    def complete(self) -> bool:
        return self.end is not None and not self.waiting

    def add_frames(self, part: FramePart) -> list[tuple[int, np.ndarray]]:
        """Register a part; returns ``(ref, pixels)`` of the frames that need the CNN."""
        new = [(part.first_ref + row, pixels) for row, pixels in enumerate(part.pixels)]
        for ref, _ in new:
            self.waiting[ref] = []
        for ref, first, stop in part.uses:
            if ref in self.waiting:
                self.waiting[ref].append((first, stop))
            else:
                self._add(self.maps[ref], first, stop)
        return new

    def add_map(self, ref: int, frame_map: np.ndarray) -> None:
        for first, stop in self.waiting.pop(ref):
            self._add(frame_map, first, stop)
        self.maps[ref] = frame_map
        self.maps.pop(ref - DEDUP_WINDOW, None)

    def _add(self, frame_map: np.ndarray, first: int, stop: int) -> None:
        """Add ``frame_map`` once per target in [first, stop): a frame shown at two targets counts twice."""
        fps = self.config.fps
        while first < stop:
            segment = first // fps
            upto = min(stop, (segment + 1) * fps)
            total = self.sums.get(segment)
            if total is None:
                total = self.sums[segment] = np.zeros(frame_map.shape, np.float64)
            total += frame_map * np.float64(upto - first)
            self.filled[segment] = self.filled.get(segment, 0) + upto - first
            if self.filled[segment] == fps:
                self.finished[segment] = (self.sums.pop(segment) / fps).astype(np.float32)
                del self.filled[segment]
            first = upto

    def features(self) -> VideoFeatures:
        end, config = self.end, self.config
        segments = end.segments
        if len(self.finished) != segments or self.sums:
            raise RuntimeError(f"{self.video_id}: {len(self.finished)} of {segments} segments complete")
        visual = np.empty((segments, *self.finished[0].shape), np.float32)
        for t in range(segments):
            visual[t] = self.finished.pop(t)
        audio = self.audio_rows[:segments]
        if len(audio) < segments:  # video longer than its audio: the rest is silence, as zero-padding gives
            silence = self.audio_encoder.encode(np.zeros(0, np.float32), segments - len(audio))
            audio = np.concatenate([audio, np.asarray(silence, dtype=np.float32)])
        notes = list(end.notes) + self.audio_notes
        # With T = ceil(duration) padding the last partial second is normal; a fixed T
        # longer than the video is worth telling the user.
        if config.segments is not None and end.duration < segments - 1e-6:
            notes.append(f"shorter than {segments} segments ({end.duration:.2f} s): padded "
                         "(last frame held, silence)")
        return VideoFeatures(video_id=self.video_id, visual=visual, audio=audio, duration=end.duration,
                             source_fps=end.source_fps, has_audio=self.has_audio, notes=notes)


def extract_stream(messages: Iterable[Message | None], batcher: FrameBatcher, audio_encoder,
                   config: ExtractorConfig, video_ids: dict[int, str]
                   ) -> Iterator[tuple[int, VideoFeatures | VideoFailed]]:
    """Turn the messages of many videos into ``(key, VideoFeatures or VideoFailed)`` in order of completion.

    ``None`` in ``messages`` means "nothing is ready right now": the partial batch runs
    rather than leaving the CNN idle. A video that fails here (e.g. in its audio
    encoder) fails alone.
    """
    videos: dict[int, VideoAssembly] = {}

    def deliver(ready) -> Iterator[tuple[int, VideoFeatures | VideoFailed]]:
        for (key, ref), frame_map in ready:
            video = videos.get(key)
            if video is None:
                continue  # the video failed after its frames were queued
            video.add_map(ref, frame_map)
            if video.complete:
                yield finish(key)

    def finish(key: int) -> tuple[int, VideoFeatures | VideoFailed]:
        try:
            return key, videos.pop(key).features()
        except Exception as error:
            return key, VideoFailed(key, failure_reason(error), error)

    for message in messages:
        if message is None:
            yield from deliver(batcher.drain())
            continue
        key = message.key
        if isinstance(message, VideoFailed):
            videos.pop(key, None)
            yield key, message
            continue
        try:
            if isinstance(message, AudioPart):
                videos[key] = VideoAssembly(video_ids[key], config, audio_encoder, message)
            elif key not in videos:
                continue  # failed earlier; its worker's remaining messages are ignored
            elif isinstance(message, FramePart):
                for ref, pixels in videos[key].add_frames(message):
                    batcher.add(pixels, (key, ref))
                    if batcher.full:
                        yield from deliver(batcher.run())
            elif isinstance(message, VideoEnd):
                videos[key].end = message
        except Exception as error:
            videos.pop(key, None)
            yield key, VideoFailed(key, failure_reason(error), error)
            continue
        if key in videos and videos[key].complete:
            yield finish(key)
    yield from deliver(batcher.drain())
    for key in list(videos):  # a message source that stopped early: nothing is left unreported
        videos.pop(key)
        yield key, VideoFailed(key, "decoding stopped before the video ended")
