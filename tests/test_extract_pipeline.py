"""extract_video end to end with real (randomly initialised) backbones.

Temporal alignment with a known answer: second t of a clip shows COLOURS[t] and
plays TONES[t]; its segment t must give the features of a static clip of that
colour and tone. Then the valid-but-unusual inputs, each with its flag.
"""
from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pytest

from avepipe.data.video_writer import solid_frames, tone, write_test_video
from avepipe.extract.pipeline import extract_video
from tests._extract_helpers import COLOURS, LOSSLESS, TONES, cosine, random_encoders, simple_clip

SECONDS = 3


@pytest.fixture(scope="module")
def encoders():
    return random_encoders()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return tmp_path_factory.mktemp("pipeline")


@pytest.fixture(scope="module")
def references(encoders, clips):
    """Features of a static one-second clip per colour/tone: the known answers."""
    visual_encoder, audio_encoder, config = encoders
    refs = []
    for index in range(SECONDS):
        clip = write_test_video(clips / f"static{index}.mkv", solid_frames([COLOURS[index]], 2, 64, 48), 2,
                                audio=tone(TONES[index], 1.0), **LOSSLESS)
        features = extract_video(clip, visual_encoder, audio_encoder, config)
        assert features.segments == 1
        refs.append((features.visual[0], features.audio[0]))
    # The test can only tell seconds apart if the answers differ.
    for a in range(SECONDS):
        for b in range(a + 1, SECONDS):
            assert cosine(refs[a][0], refs[b][0]) < 0.99
            assert cosine(refs[a][1], refs[b][1]) < 0.99
    return refs


def _vfr_pts() -> np.ndarray:
    """Irregular timestamps: 5 frames in second 0, 40 in second 1, 12 in second 2 (nominal 25 fps).

    Sampling by frame index at the nominal rate would put second-1 frames into segment 0.
    """
    rng = np.random.default_rng(3)
    parts = [t + np.sort(rng.uniform(0.0, 1.0, n)) for t, n in enumerate([5, 40, 12])]
    pts = np.concatenate(parts)
    pts[0] = 0.0
    return pts


@pytest.mark.parametrize("rate", [10, 25, Fraction(30000, 1001), 60, "vfr"], ids=["10", "25", "29.97", "60", "vfr"])
def test_temporal_alignment(encoders, references, clips, rate):
    visual_encoder, audio_encoder, config = encoders
    assert config.fps == 16
    if rate == "vfr":
        pts, nominal = _vfr_pts(), 25
    else:
        pts, nominal = np.arange(int(SECONDS * rate)) / float(rate), rate
    frames = np.stack([np.broadcast_to(np.asarray(COLOURS[int(p)], np.uint8), (48, 64, 3)) for p in pts])
    audio = np.concatenate([tone(TONES[t], 1.0) for t in range(SECONDS)])
    name = f"changing-{str(rate).replace('/', '_')}.mkv"
    clip = write_test_video(clips / name, frames, nominal, pts=pts if rate == "vfr" else None, audio=audio,
                            **LOSSLESS)
    features = extract_video(clip, visual_encoder, audio_encoder, config)
    assert features.segments == SECONDS
    for t, (visual_ref, audio_ref) in enumerate(references):
        assert cosine(features.visual[t], visual_ref) > 0.999, f"visual segment {t}"
        assert cosine(features.audio[t], audio_ref) > 0.999, f"audio segment {t}"


@pytest.fixture(scope="module")
def low_fps(encoders):
    """Same backbones, 2 frames per second: enough for the flag tests, cheap on CPU."""
    visual_encoder, audio_encoder, config = encoders
    return visual_encoder, audio_encoder, dataclasses.replace(config, fps=2)


def test_no_audio_stream_is_flagged_silence(low_fps, clips):
    visual_encoder, audio_encoder, config = low_fps
    features = extract_video(simple_clip(clips / "mute.mp4", seconds=2, fps=4, audio=False),
                             visual_encoder, audio_encoder, config)
    assert features.has_audio is False
    assert any("no audio stream" in note for note in features.notes)
    silence = audio_encoder.encode(np.zeros(0, np.float32), 2)
    np.testing.assert_allclose(features.audio, silence, rtol=1e-4, atol=1e-4)


def test_shorter_than_fixed_segments_is_padded(low_fps, references, clips):
    visual_encoder, audio_encoder, config = low_fps
    config = dataclasses.replace(config, segments=3)
    features = extract_video(simple_clip(clips / "short.mp4", seconds=1.5, fps=4),
                             visual_encoder, audio_encoder, config)
    assert features.visual.shape == (3, 7, 7, 512) and features.audio.shape == (3, 128)
    assert features.duration == pytest.approx(1.5, abs=0.01)
    assert any("padded" in note for note in features.notes)
    np.testing.assert_allclose(features.visual[2], features.visual[1], rtol=1e-5, atol=1e-6)  # last frame held
    silence = audio_encoder.encode(np.zeros(0, np.float32), 1)[0]
    np.testing.assert_allclose(features.audio[2], silence, rtol=1e-4, atol=1e-4)
    assert cosine(features.visual[1], references[1][0]) > 0.999


def test_longer_than_fixed_segments_is_cropped(low_fps, clips):
    visual_encoder, audio_encoder, config = low_fps
    features = extract_video(simple_clip(clips / "long.mp4", seconds=3, fps=4),
                             visual_encoder, audio_encoder, dataclasses.replace(config, segments=1))
    assert features.segments == 1 and features.audio.shape == (1, 128)


@pytest.mark.parametrize("fps, size", [(1, (64, 48)), (120, (64, 48)), (4, (223, 97))], ids=["1fps", "120fps", "223x97"])
def test_unusual_rates_and_sizes(low_fps, references, clips, fps, size):
    visual_encoder, audio_encoder, config = low_fps
    clip = simple_clip(clips / f"odd-{fps}-{size[0]}.mp4", seconds=2, fps=fps, size=size)
    features = extract_video(clip, visual_encoder, audio_encoder, config)
    assert features.segments == 2
    assert features.source_fps == pytest.approx(fps, rel=0.01)
    for t in range(2):  # mpeg/x264 4:2:0 is lossy: a little below the lossless 0.999
        assert cosine(features.visual[t], references[t][0]) > 0.995


def test_4k_frames(low_fps, references, clips):
    visual_encoder, audio_encoder, config = low_fps
    frames = solid_frames([COLOURS[0]], 1, 3840, 2160)
    clip = write_test_video(clips / "uhd.mp4", frames, 1, options={"preset": "ultrafast"})
    features = extract_video(clip, visual_encoder, audio_encoder, config)
    assert features.segments == 1 and not features.has_audio
    assert cosine(features.visual[0], references[0][0]) > 0.995


@pytest.mark.parametrize("channels", [1, 2, 6], ids=["mono", "stereo", "5.1"])
@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_audio_layouts_and_rates(low_fps, references, clips, channels, rate):
    visual_encoder, audio_encoder, config = low_fps
    clip = simple_clip(clips / f"audio-{channels}-{rate}.mp4", seconds=1, fps=2, channels=channels,
                       sample_rate=rate)
    features = extract_video(clip, visual_encoder, audio_encoder, config)
    assert features.has_audio and features.audio.shape == (1, 128)
    assert cosine(features.audio[0], references[0][1]) > 0.99
