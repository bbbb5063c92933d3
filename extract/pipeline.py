"""One video in, its features out: decode, sample, run each unique frame once, pool per segment.

The same streaming machinery as ``avepipe extract`` (``extract.stream`` ->
``extract.scheduler``), run in this process: frames are reduced to their
segment's mean map as they are decoded, so memory does not grow with the video. A ``tap``
sees every message on its way (e.g. ``SecondThumbnails`` keeps one small frame per second),
so a caller that also wants pictures does not decode the video a second time.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from avepipe.extract.batching import FrameBatcher
from avepipe.extract.features import VideoFeatures
from avepipe.extract.provenance import ExtractorConfig
from avepipe.extract.scheduler import extract_stream
from avepipe.extract.stream import Message, in_process_messages


def extract_video(path: str | Path, visual_encoder, audio_encoder, config: ExtractorConfig,
                  video_id: str | None = None, tap: Callable[[Message], None] | None = None) -> VideoFeatures:
    """Features of ``path`` as ``config`` defines them (fps, fixed segments, sample rate, frame size).

    Visual: the frames selected by the targets t + k/fps, each distinct one through the CNN once,
    averaged over the segment's targets (a frame picked by two targets counts twice,
    as if it had been sampled twice). Audio: the mono 16 kHz waveform cut into
    one-second segments by the audio encoder. Videos shorter than T hold their last
    frame and get zero (silent) audio; a file without audio gets silence for every
    segment and ``has_audio=False``. Raises ``extract.decode.DecodeError`` for files
    that cannot be extracted. ``tap`` is called with each of the video's messages before
    extraction uses it (it must not change them).
    """
    path = Path(path)
    batcher = FrameBatcher(visual_encoder, visual_encoder.batch_size, config.visual_precision, config.tf32)
    messages = in_process_messages([(0, path)], config)
    if tap is not None:
        messages = _tapped(messages, tap)
    for _, outcome in extract_stream(messages, batcher, audio_encoder, config, {0: video_id or path.stem}):
        if isinstance(outcome, VideoFeatures):
            return outcome
        raise outcome.error if outcome.error is not None else RuntimeError(outcome.reason)
    raise RuntimeError(f"{path}: extraction produced no result")


def _tapped(messages: Iterable[Message], tap: Callable[[Message], None]) -> Iterator[Message]:
    for message in messages:
        tap(message)
        yield message
