"""Pixel-identical frames go through the CNN once: the decoder side's reuse of recent frames (``_FrameChunker``)."""
import numpy as np

from avepipe.extract.stream import DEDUP_WINDOW, SAMPLE_STEP, _FrameChunker


def frames_of(chunker, pictures):
    """Feed one target per picture; returns (the distinct pixels sent, each target's ref)."""
    parts = [part for index, picture in enumerate(pictures) for part in chunker.add(picture, index, index + 1)]
    parts.append(chunker.flush())
    pixels = [row for part in parts for row in part.pixels]
    refs = [ref for part in parts for ref, _, _ in part.uses]
    return pixels, refs


def picture(value, size=224):
    return np.full((size, size, 3), value, np.uint8)


def test_identical_frames_are_sent_once_and_referred_to_again():
    a, b = picture(10), picture(20)
    pixels, refs = frames_of(_FrameChunker(0, chunk_frames=2), [a, b, a.copy(), picture(30), b.copy()])
    assert refs == [0, 1, 0, 2, 1]
    assert [int(p[0, 0, 0]) for p in pixels] == [10, 20, 30]


def test_frames_differing_only_between_sampled_pixels_stay_distinct():
    a = picture(10)
    b = a.copy()
    b[SAMPLE_STEP // 2, SAMPLE_STEP // 2, 1] = 11       # not on the sampled grid: same fingerprint
    assert a[::SAMPLE_STEP, ::SAMPLE_STEP].tobytes() == b[::SAMPLE_STEP, ::SAMPLE_STEP].tobytes()
    pixels, refs = frames_of(_FrameChunker(0, chunk_frames=8), [a, b, a.copy(), b.copy()])
    assert refs == [0, 1, 0, 1]
    assert np.array_equal(pixels[1], b)


def test_a_frame_older_than_the_window_is_sent_again():
    # The consumer keeps the maps of the last DEDUP_WINDOW distinct frames only.
    first = picture(0, size=16)
    others = [picture(value, size=16) for value in range(1, DEDUP_WINDOW + 1)]
    pixels, refs = frames_of(_FrameChunker(0, chunk_frames=8), [first, *others, first.copy()])
    assert refs[-1] == DEDUP_WINDOW + 1 and len(pixels) == DEDUP_WINDOW + 2
    pixels, refs = frames_of(_FrameChunker(0, chunk_frames=8), [first, *others[1:], first.copy()])
    assert refs[-1] == 0
