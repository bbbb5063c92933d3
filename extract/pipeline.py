"""One video in, its features out: decode, sample, run each unique frame once, pool per segment."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from extract.decode import decode_audio_with_notes, decode_video
from extract.features import VideoFeatures
from extract.provenance import ExtractorConfig
from extract.sampling import frame_for_targets, segment_count, target_times


def extract_video(path: str | Path, visual_encoder, audio_encoder, config: ExtractorConfig,
                  video_id: str | None = None) -> VideoFeatures:
    """Features of ``path`` as ``config`` defines them (fps, fixed segments, sample rate, frame size).

    Visual: the frames selected by the targets t + k/fps, each distinct one through the CNN once,
    averaged over the segment's targets (a frame picked by two targets counts twice,
    as if it had been sampled twice). Audio: the mono 16 kHz waveform cut into
    one-second segments by the audio encoder. Videos shorter than T hold their last
    frame and get zero (silent) audio; a file without audio gets silence for every
    segment and ``has_audio=False``. Raises ``extract.decode.DecodeError`` for files
    that cannot be extracted.
    """
    path = Path(path)
    video = decode_video(path, fps=config.fps, size=config.frame_size,
                         max_time=float(config.segments) if config.segments is not None else None)
    segments = segment_count(video.duration, config.segments)
    notes = list(video.notes)

    chosen = frame_for_targets(video.pts, target_times(segments, config.fps))
    distinct, position = _distinct_images(video.frames, chosen)
    frame_maps = visual_encoder.encode(video.frames[distinct])
    visual = np.stack([frame_maps[position[t * config.fps:(t + 1) * config.fps]].mean(axis=0)
                       for t in range(segments)]).astype(np.float32)

    audio = decode_audio_with_notes(path, config.sample_rate, start=video.start)
    if audio is None:
        waveform = np.zeros(0, np.float32)
        notes.append("no audio stream: audio features are those of silence")
    else:
        waveform = audio.waveform
        notes.extend(audio.notes)
    audio_features = np.asarray(audio_encoder.encode(waveform, segments), dtype=np.float32)

    # With T = ceil(duration) padding the last partial second is normal; a fixed T
    # longer than the video is worth telling the user.
    if config.segments is not None and video.duration < segments - 1e-6:
        notes.append(f"shorter than {segments} segments ({video.duration:.2f} s): padded "
                     "(last frame held, silence)")
    return VideoFeatures(
        video_id=video_id or path.stem,
        visual=visual,
        audio=audio_features,
        duration=video.duration,
        source_fps=video.source_fps,
        has_audio=audio is not None,
        notes=notes,
    )


def _distinct_images(frames: np.ndarray, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames to run through the CNN, and for each target the row of its result.

    Each selected frame is encoded once; frames whose 224x224 pixels are identical
    (static shots, duplicated frames of a low-fps source re-encoded at a higher
    rate) share one forward pass too, since the CNN would give the same maps.
    """
    row_of: dict[bytes, int] = {}
    distinct: list[int] = []
    row_of_frame: dict[int, int] = {}
    for index in np.unique(chosen).tolist():
        key = hashlib.blake2b(frames[index].tobytes(), digest_size=16).digest()
        if key not in row_of:
            row_of[key] = len(distinct)
            distinct.append(index)
        row_of_frame[index] = row_of[key]
    return np.asarray(distinct, dtype=np.int64), np.asarray([row_of_frame[i] for i in chosen.tolist()])
