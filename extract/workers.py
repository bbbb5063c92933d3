"""Decoder worker processes: videos in, ``extract.stream`` messages out through one bounded queue.

Workers are started with ``spawn`` (safe with threads and CUDA in the parent), import
no torch, ignore Ctrl-C (the main process stops them, so finished videos are written
and nothing half-done is), exit when the main process disappears (``kill -9``), and
report a bad file as ``VideoFailed`` instead of dying. A worker that dies anyway
(a crash inside FFmpeg) fails only the video it was decoding and is replaced.
Each worker is given at most two videos at a time, so the queue, not the folder
size, bounds memory: ``queue_depth`` messages of ``CHUNK_FRAMES`` frames each. Their
pixels travel through shared memory (``extract.frame_slots``) where there is room for it.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

from avepipe.extract.frame_slots import SLOTS, FrameSlots, InSlot, shared_memory_room
from avepipe.extract.provenance import ExtractorConfig
from avepipe.machine import usable_cpus
from avepipe.extract.stream import (CHUNK_FRAMES, FramePart, Message, VideoEnd, VideoFailed, failure_reason,
                                    video_messages)

POLL_SECONDS = 0.05   # wait for a message this long before letting the CNN run a partial batch
VIDEOS_PER_WORKER = 2  # one decoding, one ready to start: no gap between videos


class _Stopped(Exception):
    pass


# On CPU the CNN shares the cores with the decoders and is by far the slower: decoding and converting a
# sampled frame took ~3 ms of one core here (benchmarks/feed.py), a VGG-19 fp32 pass ~1 s (~0.4 s in bf16
# on a CPU with native bf16). One decoder per this many cores stays ahead with room for 20x costlier
# sources (4K, HEVC) and leaves the rest of the cores to the CNN.
CPU_CORES_PER_DECODER = 16


def decoder_workers(cpus: int, local_ranks: int, device_type: str) -> int:
    """Decoders per rank, from the usable ``cpus`` shared by the ``local_ranks`` ranks of this machine.

    On a GPU (any device but "cpu") decoding is the bottleneck: every CPU but one per rank (its main
    process: batching, audio encoder, writing), no cap. On CPU the CNN is: one decoder per
    ``CPU_CORES_PER_DECODER`` CPUs of the rank's share. At least one either way.
    """
    share = cpus // max(1, local_ranks)
    if device_type == "cpu":
        return max(1, share // CPU_CORES_PER_DECODER)
    return max(1, share - 1)


def default_workers(device_type: str, local_ranks: int = 1) -> int:
    """``decoder_workers`` for the CPUs this process may run on."""
    return decoder_workers(usable_cpus(), local_ranks, device_type)


def _worker(tasks, results, stop, config_json: str, parent: int, slots: FrameSlots | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    results.cancel_join_thread()  # never block exit on a full queue nobody reads any more
    config = ExtractorConfig.from_json(config_json)

    def alive() -> bool:
        return not stop.is_set() and os.getppid() == parent

    def wait(semaphore) -> None:
        while not semaphore.acquire(timeout=0.5):
            if not alive():
                raise _Stopped

    def put(message: Message) -> None:
        if slots is not None and isinstance(message, FramePart) and slots.fits(message):
            message = slots.store(message, wait)
        while True:
            if not alive():
                raise _Stopped
            try:
                results.put(message, timeout=0.5)
                return
            except queue.Full:
                pass

    try:
        while alive():
            try:
                task = tasks.get(timeout=0.5)
            except queue.Empty:
                continue
            if task is None:
                return
            key, path = task
            try:
                for message in video_messages(path, key, config):
                    put(message)
            except _Stopped:
                raise
            except Exception as error:  # a bad file fails alone
                put(VideoFailed(key, failure_reason(error)))
    except _Stopped:
        return


class DecoderPool:
    """``workers`` decoder processes; ``messages(videos)`` yields their messages (``None`` when idle)."""

    def __init__(self, workers: int, config: ExtractorConfig, queue_depth: int | None = None) -> None:
        self._ctx = mp.get_context("spawn")
        self._config_json = config.to_json()
        self.results = self._ctx.Queue(maxsize=queue_depth or 4 * workers + 4)
        self._stop = self._ctx.Event()
        frame_bytes = config.frame_size * config.frame_size * 3
        self._use_slots = shared_memory_room(workers * SLOTS * CHUNK_FRAMES * frame_bytes)
        self._slots: dict[str, FrameSlots] = {}  # every ring made, by name (a replaced worker's too)
        self._frame_shape = (config.frame_size, config.frame_size, 3)
        self._workers = [self._start() for _ in range(workers)]
        self._assigned: list[deque[int]] = [deque() for _ in range(workers)]
        self.restarts = 0

    def _start(self):
        tasks = self._ctx.Queue()
        slots = FrameSlots(self._ctx, self._frame_shape, CHUNK_FRAMES) if self._use_slots else None
        if slots is not None:
            self._slots[slots.name] = slots
        process = self._ctx.Process(target=_worker, daemon=True, name="avepipe-decoder",
                                    args=(tasks, self.results, self._stop, self._config_json, os.getpid(), slots))
        process.start()
        return process, tasks

    def messages(self, videos: Iterable[tuple[int, Path]]) -> Iterator[Message | None]:
        """The workers' messages; a ``FramePart``'s pixels are valid until the next message is asked for."""
        todo = deque(videos)
        reading: FrameSlots | None = None  # the ring whose oldest slot the consumer was last given
        owner: dict[int, tuple[int, Path]] = {}  # key -> (worker index, path) of videos handed out

        def hand_out() -> None:
            for index, (_, tasks) in enumerate(self._workers):
                while todo and len(self._assigned[index]) < VIDEOS_PER_WORKER:
                    key, path = todo.popleft()
                    tasks.put((key, str(path)))
                    self._assigned[index].append(key)
                    owner[key] = index, path

        hand_out()
        while owner:
            if reading is not None:
                reading.release()
                reading = None
            try:
                message = self.results.get(timeout=POLL_SECONDS)
            except queue.Empty:
                yield from self._replace_dead(owner, todo)
                hand_out()
                yield None
                continue
            if isinstance(message, (VideoEnd, VideoFailed)) and message.key in owner:
                self._assigned[owner.pop(message.key)[0]].remove(message.key)
                hand_out()
            if isinstance(message, InSlot):
                reading = self._slots[message.ring]
                message = reading.load(message)
            yield message

    def _replace_dead(self, owner: dict[int, tuple[int, Path]], todo: deque) -> Iterator[VideoFailed]:
        """A dead worker's first video failed (it was decoding it); its others go back to the queue.

        Called only after the queue was found empty, so whatever the dead process sent has been read.
        """
        for index, (process, _) in enumerate(self._workers):
            if process.is_alive() or not self._assigned[index]:
                continue
            lost = [(key, owner.pop(key)[1]) for key in self._assigned[index]]
            self._assigned[index].clear()
            yield VideoFailed(lost[0][0], f"decoder process died (exit code {process.exitcode}) on this file")
            todo.extendleft(reversed(lost[1:]))
            self._workers[index] = self._start()
            self.restarts += 1

    def close(self) -> None:
        """Stop every worker (they finish their current message at most), then make sure they are gone."""
        self._stop.set()
        for process, tasks in self._workers:
            tasks.put(None)
            tasks.cancel_join_thread()
        for process, _ in self._workers:
            process.join(timeout=2.0)
            if process.is_alive():
                process.terminate()
                process.join(timeout=2.0)
        self.results.cancel_join_thread()
        for slots in self._slots.values():
            slots.remove()
        self._slots.clear()

    def __enter__(self) -> "DecoderPool":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
