"""Cache writes in the background thread: in order, bounded, failures reported, all finished on the way out."""
from __future__ import annotations

import threading

import pytest

from avepipe.extract.background_writes import BackgroundWrites


def test_writes_run_in_order_in_another_thread_and_all_finish():
    done, threads = [], set()

    def write(item):
        threads.add(threading.get_ident())
        done.append(item)

    with BackgroundWrites(depth=2) as writes:
        for item in range(20):
            writes.submit(write, item)
    assert done == list(range(20))
    assert threads and threading.get_ident() not in threads


def test_at_most_depth_writes_wait():
    release = threading.Event()
    started = []

    def slow(item):
        started.append(item)
        release.wait(timeout=30)

    writes = BackgroundWrites(depth=2)
    writes.submit(slow, 0)
    writes.submit(slow, 1)
    assert len(writes._pending) == 2
    release.set()
    writes.submit(slow, 2)    # over the depth: returns only once the oldest write has finished
    assert started[0] == 0 and len(writes._pending) <= 2
    writes.__exit__(None, None, None)
    assert started == [0, 1, 2]


def test_a_failed_write_is_raised_and_later_writes_still_happen():
    done = []

    def write(item):
        if item == 1:
            raise OSError("disk full")
        done.append(item)

    with pytest.raises(OSError, match="disk full"):
        with BackgroundWrites(depth=8) as writes:
            for item in range(3):
                writes.submit(write, item)
    assert done == [0, 2]


def test_leaving_on_an_interrupt_finishes_the_handed_over_writes():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with BackgroundWrites(depth=8) as writes:
            writes.submit(done.append, "finished video")
            raise KeyboardInterrupt
    assert done == ["finished video"]
