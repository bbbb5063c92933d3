"""PyAV decoding: the sampled video frames as 224x224 RGB, and the audio as 16 kHz mono.

Video frames are timed by their PTS relative to the stream start, resized and
converted by FFmpeg's scaler (one ``VideoReformatter`` per video, to ``rgb24`` at 224x224)
so no full-resolution RGB copy is ever made in Python, and turned upright by the
display-matrix rotation. ``--preset ave`` instead counts frames by index
(``IndexedFrames``, ``reader_count``) and resizes full-resolution RGB24 with OpenCV, as
the original AVE scripts did. Decoding streams: only frames that some sampling target
selects are kept, so memory grows with the number of selected frames, not with
the length of the video.

Bad files raise a ``DecodeError`` subclass whose message is one line fit for the
user's summary.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from avepipe.extract.ave_recipe import opencv_resize
from avepipe.extract.sampling import ffmpeg_reported_duration, ffmpeg_reported_rate, target_time


class DecodeError(Exception):
    """A file that cannot be extracted; ``str(error)`` is the one-line reason."""


class EmptyFileError(DecodeError):
    pass


class NotMediaError(DecodeError):
    pass


class TruncatedFileError(DecodeError):
    pass


class NoVideoStreamError(DecodeError):
    pass


# Leading bytes of the containers FFmpeg is usually given. A file that starts like
# one of these but cannot be opened is damaged (typically truncated), not "not media".
_MEDIA_SIGNATURES: tuple[tuple[int, bytes], ...] = (
    (4, b"ftyp"), (4, b"moov"), (4, b"mdat"), (4, b"free"), (4, b"wide"),  # MP4 / MOV
    (0, b"\x1a\x45\xdf\xa3"),  # Matroska / WebM
    (0, b"RIFF"), (0, b"OggS"), (0, b"FLV"), (0, b"\x00\x00\x01\xba"),  # AVI/WAV, Ogg, FLV, MPEG-PS
    (0, b"\x30\x26\xb2\x75"),  # ASF / WMV
)


@dataclass
class ProbeInfo:
    """What a container holds, read from its headers without decoding."""

    duration: float | None
    has_video: bool
    has_audio: bool
    fps: float | None
    width: int | None
    height: int | None


@dataclass
class DecodedVideo:
    """The frames some target on the 1/fps grid selects, in presentation order.

    ``frames[i]`` (uint8 ``[224, 224, 3]`` RGB, upright) was displayed from
    ``pts[i]`` seconds after the stream start. Every frame that ``frame_for_targets``
    would pick from the full frame list is here, so sampling ``pts`` gives the same answer.
    """

    frames: np.ndarray
    pts: np.ndarray
    start: float
    duration: float
    source_fps: float
    decoded_frames: int
    notes: list[str] = field(default_factory=list)


def _open(path: str | Path) -> av.container.InputContainer:
    """``av.open`` with the failure explained: empty, not media, or damaged."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise EmptyFileError("empty file (0 bytes)")
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as error:
        with path.open("rb") as handle:
            head = handle.read(16)
        if any(head[offset:offset + len(magic)] == magic for offset, magic in _MEDIA_SIGNATURES):
            raise TruncatedFileError(
                f"damaged or truncated media file, FFmpeg cannot open it ({_short(error)})"
            ) from None
        raise NotMediaError(f"not a media file FFmpeg can read ({_short(error)})") from None


def _short(error: Exception) -> str:
    """The FFmpeg message without the file path PyAV appends (the summary names the file already)."""
    text = getattr(error, "strerror", None) or str(error)
    return str(text).splitlines()[0]


def probe(path: str | Path) -> ProbeInfo:
    with _open(path) as container:
        video = container.streams.video[0] if container.streams.video else None
        return ProbeInfo(
            duration=_duration(container, video),
            has_video=video is not None,
            has_audio=bool(container.streams.audio),
            fps=float(video.average_rate) if video is not None and video.average_rate else None,
            width=video.codec_context.width if video is not None else None,
            height=video.codec_context.height if video is not None else None,
        )


def frame_display_size(frame: av.VideoFrame) -> tuple[int, int]:
    """(width, height) of ``frame`` as shown, its display-matrix rotation applied.

    Pixel positions meant for the viewer (sound-source peaks) need this, not the stored size;
    PyAV exposes the rotation on frames only.
    """
    quarter_turns = int(round((frame.rotation or 0) / 90.0))
    return (frame.height, frame.width) if quarter_turns % 2 else (frame.width, frame.height)


def _duration(container, stream) -> float | None:
    """Seconds, from the stream header when it has one, else the container's."""
    if stream is not None and stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def in_seconds(ticks: int, time_base: Fraction) -> float:
    """``float(ticks * time_base)``, the same correctly rounded float, without building a ``Fraction`` per
    frame (integer true division rounds correctly; the decoder converts three timestamps a frame)."""
    return ticks * time_base.numerator / time_base.denominator


def _stream_start(stream) -> float | None:
    if stream.start_time is None or stream.time_base is None:
        return None
    return float(stream.start_time * stream.time_base)


class _CorruptCounter:
    def __init__(self) -> None:
        self.packets = 0


def _decoded_frames(container, stream, corrupt: _CorruptCounter) -> Iterator:
    """Decode ``stream`` in order, stepping over packets the decoder rejects.

    FFmpeg can usually resynchronise at the next packet (the next key frame for
    video), so one bad packet costs a few frames, not the file. A demuxer error
    ends the stream: nothing after it can be located reliably.
    """
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.error.FFmpegError:
            corrupt.packets += 1
            return
        if packet.is_corrupt:
            corrupt.packets += 1
        try:
            frames = packet.decode()
        except av.error.FFmpegError:
            corrupt.packets += 1
            continue
        yield from frames


def upright(image: np.ndarray, rotation: float) -> np.ndarray:
    """Turn a frame upright: rotate it counter-clockwise by its display-matrix ``rotation``.

    PyAV's ``VideoFrame.rotation`` is the angle (degrees, counter-clockwise) by which
    the display matrix rotates the stored picture for presentation (FFmpeg's
    ``av_display_rotation_get``); ``np.rot90(k=1)`` is one counter-clockwise quarter
    turn. Only multiples of 90 degrees occur in practice; others are rounded.
    Mirroring flags of the display matrix are not applied (PyAV does not expose them).
    """
    quarter_turns = int(round(rotation / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(image, k=quarter_turns)) if quarter_turns else image


def _ffmpeg_rgb(size: int) -> FrameConverter:
    """FFmpeg's scaler, one per video: a reused ``VideoReformatter`` keeps its swscale context while the
    frames keep their size and format, where ``frame.to_ndarray(width=, height=)`` builds a new one for
    every frame (the same pixels; the context set-up was 40% of the feed's time)."""
    reformatter = VideoReformatter()

    def convert(frame: av.VideoFrame) -> np.ndarray:
        rgb = reformatter.reformat(frame, width=size, height=size, format="rgb24").to_ndarray()
        return upright(rgb, frame.rotation or 0)

    return convert


FrameConverter = Callable[[av.VideoFrame], np.ndarray]


def frame_converter(resize: str, size: int) -> FrameConverter:
    """How a decoded frame becomes the CNN's upright uint8 RGB ``[size, size, 3]``.

    "ffmpeg-bilinear": FFmpeg's scaler resizes while converting (the default preset).
    "opencv-linear": the full-resolution RGB24 frame, upright, through
    ``cv2.resize(rgb, (size, size))`` (the AVE recipe; needs the ``ave`` extra).
    """
    if resize == "ffmpeg-bilinear":
        return _ffmpeg_rgb(size)
    if resize == "opencv-linear":
        return lambda frame: opencv_resize(upright(frame.to_ndarray(format="rgb24"), frame.rotation or 0), size)
    raise ValueError(f"unknown frame resize {resize!r}")


def _video_stream(container):
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        raise NoVideoStreamError(f"no video stream (contains: {', '.join(kinds)})")
    return container.streams.video[0]


class SelectedFrames:
    """The frames some target t + k/fps selects, decoded lazily: iterate for ``(rgb, pts_seconds)``.

    A frame is selected when a grid target falls in [its PTS, the next frame's PTS),
    the first frame also takes targets before it, and the last frame is always kept
    (it is held to the end of the video). Frames are converted only when kept, and
    nothing is retained after it is yielded: a consumer that reduces frames as they
    come (the extraction pipeline) needs memory for a batch, not for the video.
    Decoding stops at ``max_time`` seconds (a fixed ``--segments`` count) if given.
    ``start`` is set once the first frame is yielded; ``display_size`` (the shown picture's
    (width, height)) once a frame is decoded; ``duration``, ``source_fps``,
    ``decoded_frames`` and ``notes`` once iteration has finished.
    """

    def __init__(self, path: str | Path, fps: int = 16, size: int = 224, max_time: float | None = None,
                 convert: FrameConverter | None = None) -> None:
        self.path, self.fps, self.size, self.max_time = path, fps, size, max_time
        self.convert = convert or frame_converter("ffmpeg-bilinear", size)
        self.start: float | None = None
        self.display_size: tuple[int, int] | None = None
        self.duration: float | None = None
        self.source_fps: float | None = None
        self.decoded_frames = 0
        self.notes: list[str] = []

    def __iter__(self) -> Iterator[tuple[np.ndarray, float]]:
        fps, convert, max_time = self.fps, self.convert, self.max_time
        with _open(self.path) as container:
            stream = _video_stream(container)
            stream.thread_type = "AUTO"
            corrupt = _CorruptCounter()
            start = _stream_start(stream)
            kept = 0
            pending = None        # (frame, pts seconds) of the previous frame, not yet known to be needed
            next_target = 0       # index of the first grid target not yet given a frame
            last_end = 0.0
            decoded = 0
            stopped_early = False
            fallback_step = 1.0 / float(stream.average_rate) if stream.average_rate else 1.0 / 25
            for frame in _decoded_frames(container, stream, corrupt):
                if frame.pts is None:  # raw streams without timestamps: continue from the last frame
                    seconds = (pending[1] + fallback_step) if pending else 0.0
                else:
                    time_base = frame.time_base
                    if start is None:
                        start = in_seconds(frame.pts, time_base)
                    seconds = in_seconds(frame.pts, time_base) - start
                if pending is not None and seconds < pending[1]:
                    continue  # out-of-order timestamp: the frame shown then is already known
                if pending is None:
                    self.display_size = frame_display_size(frame)
                decoded += 1
                duration_of_frame = in_seconds(frame.duration, frame.time_base) if frame.duration else fallback_step
                last_end = max(last_end, seconds + duration_of_frame)
                if pending is not None and target_time(next_target, fps) < seconds:
                    self.start = start or 0.0
                    kept += 1
                    yield convert(pending[0]), pending[1]
                    while target_time(next_target, fps) < seconds:
                        next_target += 1
                pending = (frame, seconds)
                if max_time is not None and target_time(next_target, fps) >= max_time:
                    stopped_early = True
                    break
            if pending is None:
                raise TruncatedFileError("no decodable video frames (truncated or damaged file)")

            # Duration = where the last frame's display ends, from PTS like everything else.
            # Headers are not trusted for it: Matroska has no per-stream duration and FFmpeg
            # then reports the container's, which includes a longer audio track.
            header = _duration(container, stream)
            self.duration = float(last_end if not stopped_early else (header or last_end))
            if corrupt.packets:
                self.notes.append(f"decoded past {corrupt.packets} corrupt packet(s)")
            if max_time is None and header is not None and last_end < header - 1.0:
                self.notes.append(f"video frames end at {last_end:.2f} s of {header:.2f} s (truncated?); "
                                  "last frame held")
            self.source_fps = float(stream.average_rate) if stream.average_rate else decoded / max(last_end, 1e-9)
            self.decoded_frames = decoded
            self.start = start or 0.0
            last = convert(pending[0]), pending[1]
        yield last


@dataclass
class ReaderCount:
    """What the 2018 FFmpeg reader (imageio) reported for a file, which the AVE recipe counts frames with."""

    duration: float     # container duration, all streams, to 0.01 s ("Duration: 00:00:10.01")
    rate: float         # the video stream's tbr as printed (30000/1001 -> 29.97)
    exact_rate: float   # the same rate unrounded


def reader_count(path: str | Path) -> ReaderCount:
    """``ReaderCount`` from the headers. FFmpeg's ``tbr`` is the stream's ``r_frame_rate`` (PyAV ``base_rate``)."""
    with _open(path) as container:
        stream = _video_stream(container)
        rate = stream.base_rate or stream.guessed_rate or stream.average_rate
        if container.duration is None or not rate:
            raise DecodeError("no container duration or frame rate in the header: the AVE recipe counts "
                              "frames from them")
        return ReaderCount(ffmpeg_reported_duration(container.duration), ffmpeg_reported_rate(rate), float(rate))


class IndexedFrames:
    """The frames at ``indices`` (decode order = presentation order, counted from 0), for the AVE recipe.

    Iterate for ``(rgb, first, stop)``: targets ``first .. stop - 1`` take that frame.
    ``indices`` must be non-decreasing. Targets whose index is past the last decoded
    frame take the last decoded frame (the 2018 reader would have failed there), and
    ``notes`` says so. Decoding stops after the last index that is needed. ``display_size``
    is the shown picture's (width, height), from the first frame.
    """

    def __init__(self, path: str | Path, indices: np.ndarray, convert: FrameConverter) -> None:
        self.path, self.indices, self.convert = path, np.asarray(indices), convert
        self.display_size: tuple[int, int] | None = None
        self.decoded_frames = 0
        self.notes: list[str] = []

    def __iter__(self) -> Iterator[tuple[np.ndarray, int, int]]:
        indices, total, cursor = self.indices, len(self.indices), 0
        with _open(self.path) as container:
            stream = _video_stream(container)
            stream.thread_type = "AUTO"
            corrupt = _CorruptCounter()
            last = None
            for position, frame in enumerate(_decoded_frames(container, stream, corrupt)):
                if cursor >= total:
                    break
                last, self.decoded_frames = frame, position + 1
                if position == 0:
                    self.display_size = frame_display_size(frame)
                if indices[cursor] != position:
                    continue
                stop = cursor
                while stop < total and indices[stop] == position:
                    stop += 1
                yield self.convert(frame), cursor, stop
                cursor = stop
            if last is None:
                raise TruncatedFileError("no decodable video frames (truncated or damaged file)")
            if corrupt.packets:
                self.notes.append(f"decoded past {corrupt.packets} corrupt packet(s)")
            if cursor < total:
                self.notes.append(f"AVE frame indices {indices[cursor]}..{indices[-1]} are past the last decoded "
                                  f"frame ({self.decoded_frames - 1}): it is held for {total - cursor} target(s)")
                yield self.convert(last), cursor, total


def decode_video(
    path: str | Path, fps: int = 16, size: int = 224, max_time: float | None = None
) -> DecodedVideo:
    """All frames ``SelectedFrames`` selects, in one array (memory grows with the video's length)."""
    selected = SelectedFrames(path, fps, size, max_time)
    frames, pts = [], []
    for rgb, seconds in selected:
        frames.append(rgb)
        pts.append(seconds)
    return DecodedVideo(
        frames=np.stack(frames),
        pts=np.asarray(pts, dtype=np.float64),
        start=selected.start,
        duration=selected.duration,
        source_fps=selected.source_fps,
        decoded_frames=selected.decoded_frames,
        notes=selected.notes,
    )


@dataclass
class DecodedAudio:
    waveform: np.ndarray        # float32 mono at ``sample_rate``, sample 0 = ``start`` seconds
    sample_rate: int
    notes: list[str] = field(default_factory=list)


def decode_audio(
    path: str | Path, sample_rate: int = 16000, start: float | None = None
) -> np.ndarray | None:
    """Mono float32 waveform at ``sample_rate``, or None when the file has no audio stream.

    See ``decode_audio_with_notes``; this is the plain form of it.
    """
    audio = decode_audio_with_notes(path, sample_rate, start)
    return None if audio is None else audio.waveform


def decode_audio_with_notes(
    path: str | Path, sample_rate: int = 16000, start: float | None = None
) -> DecodedAudio | None:
    """Decode the first audio stream, mix to mono by the mean of the channels, resample.

    FFmpeg's own down-mix is not a mean (stereo -> mono is (L+R)/sqrt(2); 5.1 adds
    the centre at full gain and drops LFE), so channels are first converted to
    planar float at the source rate, averaged here, and only the mono signal goes
    through PyAV's resampler. ``start`` (seconds, in the file's timeline) is where
    sample 0 should be, normally the video stream's start time; the waveform is
    padded with silence or trimmed so the two stay in sync.
    """
    with _open(path) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        corrupt = _CorruptCounter()
        to_planar = None
        to_target = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks: list[np.ndarray] = []
        first_time = None
        for frame in _decoded_frames(container, stream, corrupt):
            if first_time is None and frame.pts is not None:
                first_time = in_seconds(frame.pts, frame.time_base)
            if to_planar is None:
                to_planar = av.AudioResampler(format="fltp", layout=frame.layout, rate=frame.sample_rate)
                source_rate = frame.sample_rate
            for planar in to_planar.resample(frame):
                chunks.extend(_resample_mono(to_target, planar.to_ndarray().mean(axis=0), source_rate))
        if to_planar is not None:
            for planar in to_planar.resample(None):
                chunks.extend(_resample_mono(to_target, planar.to_ndarray().mean(axis=0), source_rate))
        chunks.extend(frame.to_ndarray()[0] for frame in to_target.resample(None))
        waveform = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)

    if start is not None and first_time is not None:
        shift = int(round((first_time - start) * sample_rate))
        waveform = np.concatenate([np.zeros(shift, np.float32), waveform]) if shift > 0 else waveform[-shift:]
    notes = [f"decoded past {corrupt.packets} corrupt audio packet(s)"] if corrupt.packets else []
    return DecodedAudio(waveform=waveform, sample_rate=sample_rate, notes=notes)


def decode_audio_pcm16(path: str | Path, sample_rate: int = 44100) -> np.ndarray | None:
    """int16 ``[C, S]`` at ``sample_rate``, every channel, from the first sample: what
    ``ffmpeg -i VIDEO -ar 44100 AUDIO.wav`` writes (FFmpeg's own resampler and 16-bit
    conversion). None when the file has no audio stream.
    """
    with _open(path) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        corrupt = _CorruptCounter()
        resampler = None
        chunks: list[np.ndarray] = []
        for frame in _decoded_frames(container, stream, corrupt):
            if resampler is None:
                resampler = av.AudioResampler(format="s16p", layout=frame.layout, rate=sample_rate)
            chunks.extend(out.to_ndarray() for out in resampler.resample(frame))
        if resampler is not None:
            chunks.extend(out.to_ndarray() for out in resampler.resample(None))
    return np.concatenate(chunks, axis=1) if chunks else np.zeros((1, 0), np.int16)


def _resample_mono(resampler: av.AudioResampler, mono: np.ndarray, rate: int) -> list[np.ndarray]:
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(mono[None, :], dtype=np.float32), format="flt", layout="mono")
    frame.sample_rate = rate
    return [out.to_ndarray()[0] for out in resampler.resample(frame)]
