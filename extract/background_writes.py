"""Cache writes in one background thread, so a part file's fsync does not stall the process that feeds the GPU.

Writes keep their order (one thread), at most ``depth`` wait at a time (memory stays
bounded by a few videos' features), and a failed write is raised in the caller, at its
next ``submit`` or at the end. Leaving the ``with`` block, even on Ctrl-C, first finishes
the writes already handed over: a video reported done is in the cache.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor


class BackgroundWrites:
    """``submit(fn, *args)`` runs ``fn(*args)`` in the writer thread, after every earlier call."""

    def __init__(self, depth: int = 4) -> None:
        self.depth = depth
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="avepipe-writer")
        self._pending: deque[Future] = deque()

    def submit(self, fn: Callable, *args) -> None:
        self._pending.append(self._thread.submit(fn, *args))
        while self._pending and (len(self._pending) > self.depth or self._pending[0].done()):
            self._pending.popleft().result()  # a failed write raises here

    def wait(self) -> None:
        """Block until every submitted write is done; the first failure is raised."""
        try:
            while self._pending:
                self._pending[0].result()
                self._pending.popleft()
        finally:
            self._pending.clear()

    def __enter__(self) -> "BackgroundWrites":
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            self.wait()
        finally:
            self._thread.shutdown(wait=True)
