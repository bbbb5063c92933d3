"""Frame pixels through shared-memory slots (``extract.frame_slots``): the same frames as decoded directly."""
from __future__ import annotations

import dataclasses
from multiprocessing import get_context, shared_memory

import numpy as np
import pytest

import avepipe.extract.workers as workers
from avepipe.data.video_writer import write_test_video
from avepipe.extract.frame_slots import FrameSlots, InSlot, shared_memory_room
from avepipe.extract.provenance import ExtractorConfig
from avepipe.extract.stream import FramePart, in_process_messages
from avepipe.extract.workers import DecoderPool


@pytest.fixture(scope="module")
def moving_clips(tmp_path_factory):
    """Two clips of random pictures: every frame distinct, several parts of 8 frames each."""
    folder = tmp_path_factory.mktemp("slots")
    rng = np.random.default_rng(0)
    return [write_test_video(folder / f"moving{i}.mp4", list(rng.integers(0, 256, (30, 48, 64, 3), np.uint8)), 10)
            for i in range(2)]


def frame_parts(messages) -> list[tuple[int, int, np.ndarray, list]]:
    """(key, first_ref, a copy of the pixels, uses) of every FramePart, copied before the next message."""
    return [(m.key, m.first_ref, m.pixels.copy(), list(m.uses)) for m in messages if isinstance(m, FramePart)]


def pool_parts(videos, config, monkeypatch) -> tuple[list, int]:
    """The pool's frame parts, and how many of them came through a slot."""
    loaded = []
    load = FrameSlots.load
    monkeypatch.setattr(FrameSlots, "load", lambda self, message: loaded.append(message) or load(self, message))
    with DecoderPool(2, config) as pool:
        parts = frame_parts(pool.messages(videos))
    return sorted(parts, key=lambda part: part[:2]), len(loaded)


def assert_same_parts(got, expected):
    assert [part[:2] for part in got] == [part[:2] for part in expected]
    for (_, _, pixels, uses), (_, _, want_pixels, want_uses) in zip(got, expected):
        assert uses == want_uses
        assert np.array_equal(pixels, want_pixels)


def test_frames_through_slots_equal_frames_decoded_here(moving_clips, monkeypatch):
    config = dataclasses.replace(ExtractorConfig(), fps=8)
    videos = list(enumerate(moving_clips))
    expected = sorted(frame_parts(in_process_messages(videos, config)), key=lambda part: part[:2])
    got, through_slots = pool_parts(videos, config, monkeypatch)
    with_pixels = sum(len(part[2]) > 0 for part in expected)   # a video's last part may carry uses only
    assert through_slots == with_pixels > 4    # more parts than a ring has slots: slots were reused
    assert_same_parts(got, expected)


def test_without_room_in_shared_memory_frames_go_through_the_pipe(moving_clips, monkeypatch):
    config = dataclasses.replace(ExtractorConfig(), fps=8)
    videos = list(enumerate(moving_clips))
    monkeypatch.setattr(workers, "shared_memory_room", lambda needed: False)
    expected = sorted(frame_parts(in_process_messages(videos, config)), key=lambda part: part[:2])
    got, through_slots = pool_parts(videos, config, monkeypatch)
    assert through_slots == 0
    assert_same_parts(got, expected)


def test_a_ring_stores_in_order_refuses_what_does_not_fit_and_is_removed():
    slots = FrameSlots(get_context("spawn"), (4, 4, 3), chunk_frames=2, slots=2)
    taken = []
    parts = [FramePart(0, 2 * i, np.full((2, 4, 4, 3), i, np.uint8), [(2 * i, 0, 1)]) for i in range(2)]
    stored = [slots.store(part, lambda semaphore: taken.append(semaphore.acquire(block=False))) for part in parts]
    assert [message.slot for message in stored] == [0, 1] and taken == [True, True]
    assert not slots.free.acquire(block=False)                # both slots in use until released
    assert all(isinstance(message, InSlot) and len(message.part.pixels) == 0 for message in stored)
    for part, message in zip(parts, stored):
        assert np.array_equal(slots.load(message).pixels, part.pixels)
    slots.release()
    assert slots.free.acquire(block=False)
    assert not slots.fits(FramePart(0, 0, np.zeros((3, 4, 4, 3), np.uint8), []))   # more frames than a slot
    assert not slots.fits(FramePart(0, 0, np.zeros((1, 5, 4, 3), np.uint8), []))   # another frame size
    name = slots.name
    slots.remove()
    with pytest.raises(FileNotFoundError):
        shared_memory.SharedMemory(name=name)


def test_room_in_shared_memory_is_asked_of_its_folder(tmp_path):
    assert shared_memory_room(1, str(tmp_path))
    assert not shared_memory_room(2 ** 62, str(tmp_path))
    assert shared_memory_room(2 ** 62, str(tmp_path / "absent"))   # nothing to ask: assumed fine
