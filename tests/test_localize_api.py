"""Localizer on real generated videos whose events are at known seconds (transparent extractor and model)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from avepipe.extract.provenance import ExtractorConfig
from avepipe.localize_schema import VIDEO
from avepipe.plots import plot_explain, plot_timeline
from tests._localize_helpers import (CLASSES, RedAndLoudNet, check_png, red_and_loud_localizer, schema_errors, seconds_of,
                                     write_video)


def _pattern(length: int, seconds) -> list[bool]:
    return [t in seconds for t in range(length)]


def test_events_at_known_seconds_and_the_ave_definition(tmp_path):
    # event = red AND loud: 3, 4, 5. Second 1 loud only, second 7 red only: background.
    red = _pattern(10, {3, 4, 5, 7})
    loud = _pattern(10, {1, 3, 4, 5})
    path = write_video(tmp_path / "clip.mp4", red, loud)
    result = red_and_loud_localizer().localize(path)
    assert result.video == "clip" and result.has_audio and abs(result.duration - 10) < 0.2
    assert len(result.segments) == 10
    assert seconds_of(result.labels) == [3, 4, 5]
    assert [(i.start, i.end, i.label) for i in result.intervals] == [(3.0, 6.0, "beep")]
    assert result.intervals[0].confidence == pytest.approx(1 / (1 + np.exp(-4)), rel=1e-4)
    probabilities = result.segments[4].probabilities
    assert set(probabilities) == set(CLASSES) and sum(probabilities.values()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("fixed", [None, 10], ids=["any-T", "features-of-fixed-T"])
def test_a_37_second_video_is_windowed_and_fully_covered(tmp_path, fixed):
    """Also when the checkpoint's features had a fixed T (an imported AVE checkpoint records 10): no cropping."""
    events = {0, 1, 2, 17, 18, 30, 31, 32, 36}
    path = write_video(tmp_path / "long.mp4", _pattern(37, events), _pattern(37, events))
    localizer = red_and_loud_localizer(segments=10, extractor=ExtractorConfig(fps=2, segments=fixed))
    calls = []
    original = localizer.net.forward

    def spy(audio, visual):
        calls.append(tuple(audio.shape))
        return original(audio, visual)

    localizer.net.forward = spy
    result = localizer.localize(path)
    assert len(result.segments) == 37 and [s.second for s in result.segments] == list(range(37))
    assert seconds_of(result.labels) == sorted(events)
    assert [(i.start, i.end) for i in result.intervals] == [(0, 3), (17, 19), (30, 33), (36, 37)]
    # windows of the training length only: starts 0, 5, ..., 25 and 27 -> 7 windows of 10 seconds
    assert sum(shape[0] for shape in calls) == 7 and all(shape[1] == 10 for shape in calls)


class _SilenceIsLoudNet(RedAndLoudNet):
    """Would call every red second an event, sound or not."""

    def forward(self, audio, visual):
        return super().forward(audio + 1.0, visual)


def test_video_without_audio_is_reported_and_background(tmp_path):
    path = write_video(tmp_path / "silent.mp4", _pattern(5, {0, 1, 2, 3, 4}), None)
    localizer = red_and_loud_localizer()
    localizer.net = _SilenceIsLoudNet()
    assert seconds_of(localizer.localize(write_video(tmp_path / "loud.mp4", [True] * 5, [False] * 5)).labels) \
        == [0, 1, 2, 3, 4]  # this net ignores the sound...
    result = localizer.localize(path)  # ...but without an audio stream there can be no audio-visual event
    assert result.has_audio is False
    assert result.labels == ["background"] * 5 and result.intervals == []
    assert any("no audio" in note for note in result.notes)
    document = result.to_dict()
    assert document["has_audio"] is False


def test_explain_outputs_and_pictures(tmp_path):
    events = {2, 3}
    path = write_video(tmp_path / "clip.mp4", _pattern(12, events | {8}), _pattern(12, events))
    result = red_and_loud_localizer(segments=10).localize(path, explain=True)
    assert list(result.explain) == ["attention", "gamma_va", "gamma_av"]     # as the network's explain() gives them
    gamma_va, gamma_av, attention = (result.explain[n] for n in ("gamma_va", "gamma_av", "attention"))
    assert gamma_va.shape == (12, 12) and attention.shape == (12, 7, 7)
    assert result.thumbnails.shape == (12, 96, 96, 3) and result.thumbnails.dtype == np.uint8
    np.testing.assert_allclose(attention.sum(axis=(1, 2)), 1.0, rtol=1e-4)
    # seconds 0 and 11 never share a 10-second window: unknown, not zero
    assert np.isnan(gamma_va[0, 11]) and not np.isnan(gamma_va[2, 3])
    np.testing.assert_allclose(gamma_av, gamma_va.T, equal_nan=True)
    # the thumbnail of a red second is red, of a grey second grey
    assert result.thumbnails[8, ..., 0].mean() > 180 and abs(result.thumbnails[0].mean() - 90) < 15

    document = {"path": str(path), **result.to_dict()}
    assert schema_errors(json.loads(json.dumps(document)), VIDEO) == []
    assert document["explain"]["gamma_va"][0][11] is None

    truth = ["beep" if t in events else "background" for t in range(12)]
    check_png(plot_timeline(result, tmp_path / "timeline.png", CLASSES, truth))
    for name in result.explain:
        check_png(plot_explain(result, name, tmp_path / f"{name}.png"))


def test_schema_checker_can_fail():
    assert schema_errors({"video": 3}, VIDEO)  # wrong type and missing keys are caught
    good = {"video": "v", "path": "v.mp4", "duration": 1.0, "has_audio": True, "notes": [],
            "segments": [{"second": 0, "start": 0.0, "end": 1.0, "label": "beep", "confidence": 1.5}],
            "intervals": []}
    assert schema_errors(good, VIDEO) == ["$.segments[0].confidence: 1.5 > 1"]
