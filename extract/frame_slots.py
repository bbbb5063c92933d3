"""Frame pixels from a decoder worker to the main process through shared memory instead of the pipe.

A ``FramePart`` pickled through a ``multiprocessing.Queue`` (1.2 MB of pixels) is copied four
times on its way: pickling, the pipe's write and read, unpickling. Through a slot it is copied
once, into the slot, and the main process reads it in place; only the small rest of the message
crosses the pipe. Each worker has its own ring of ``SLOTS`` slots, created by the main process:
the worker fills the next slot (waiting while the main process still reads it), the main process
gives it back when the consumer asks for the next message. Messages of one worker arrive in the
order they were sent, so slots are filled and given back in ring order and one semaphore per
worker is all the bookkeeping. Where shared memory is short (a container's 64 MB ``/dev/shm``),
the pool does not use slots and frames go through the pipe as before.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from multiprocessing import shared_memory

import numpy as np

from avepipe.extract.stream import FramePart

SLOTS = 4  # per worker: 4.8 MB of 224x224 frames; the results queue holds ~4 messages per worker anyway


@dataclass
class InSlot:
    """A ``FramePart`` whose pixels wait in slot ``slot`` of the ring named ``ring``."""

    part: FramePart   # its ``pixels`` left empty on the way
    ring: str
    slot: int
    count: int


class FrameSlots:
    """One worker's ring of slots, each ``chunk_frames`` frames of ``frame_shape`` uint8."""

    def __init__(self, context, frame_shape: tuple[int, ...], chunk_frames: int, slots: int = SLOTS) -> None:
        self.frame_shape, self.chunk_frames, self.slots = tuple(frame_shape), chunk_frames, slots
        self.memory = shared_memory.SharedMemory(create=True, size=slots * chunk_frames * math.prod(frame_shape))
        self.free = context.Semaphore(slots)
        self.next_slot = 0  # the worker's side: the slot it fills next

    @property
    def name(self) -> str:
        return self.memory.name

    def view(self, slot: int, count: int) -> np.ndarray:
        """Frames ``0 .. count - 1`` of ``slot``, in place."""
        offset = slot * self.chunk_frames * math.prod(self.frame_shape)
        return np.ndarray((count, *self.frame_shape), np.uint8, buffer=self.memory.buf, offset=offset)

    def fits(self, part: FramePart) -> bool:
        pixels = part.pixels
        return (pixels.dtype == np.uint8 and 0 < len(pixels) <= self.chunk_frames
                and pixels.shape[1:] == self.frame_shape)

    def store(self, part: FramePart, wait) -> InSlot:
        """Worker side: copy ``part``'s pixels into the next slot once it is free; ``wait(semaphore)``
        acquires it (so the worker can keep checking whether it should stop)."""
        wait(self.free)
        slot, self.next_slot = self.next_slot, (self.next_slot + 1) % self.slots
        count = len(part.pixels)
        self.view(slot, count)[...] = part.pixels
        return InSlot(replace(part, pixels=np.zeros((0, *self.frame_shape), np.uint8)), self.name, slot, count)

    def load(self, message: InSlot) -> FramePart:
        """Main side: the part with its pixels viewed in the slot (valid until ``release``)."""
        return replace(message.part, pixels=self.view(message.slot, message.count))

    def release(self) -> None:
        """Main side: the oldest slot in use is read; the worker may fill it again."""
        self.free.release()

    def remove(self) -> None:
        """Main side, after the worker is gone: free the memory (views still held keep their mapping)."""
        self.memory.unlink()
        try:
            self.memory.close()
        except BufferError:  # a view is still referenced: the mapping goes with it
            pass


def shared_memory_room(needed: int, folder: str = "/dev/shm") -> bool:
    """Whether ``folder`` (POSIX shared memory on Linux) has room for ``needed`` bytes twice over;
    True where there is no such folder to ask (the system's shared memory is not a small tmpfs)."""
    try:
        stats = os.statvfs(folder)
    except OSError:
        return True
    return stats.f_bavail * stats.f_frsize >= 2 * needed
