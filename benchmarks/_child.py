"""Benchmarks measure each case in a fresh process, so that its peak RSS is its own."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path


def run_child(script: str | Path, arguments: list[str]) -> dict:
    """Run ``script arguments`` with this Python; the child's last stdout line is its JSON result."""
    out = subprocess.run([sys.executable, str(script), *arguments], check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def peak_rss_mb(pid: int | str = "self") -> float:
    """A process's own peak resident memory (VmHWM of its address space, MiB); this process's by default.

    Not ``ru_maxrss``: after fork + exec that keeps the high-water mark of the forked copy of the parent, so
    a child spawned by a parent holding 600 MB reports at least 600 MB whatever it did itself.
    """
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise OSError(f"no VmHWM in /proc/{pid}/status")


class ChildrenPeakRss:
    """The largest own peak RSS (``peak_rss_mb``) among this process's children whose command line holds
    ``marker``, read every ``every`` seconds inside ``with``: ``.peak_mb``.

    For worker processes started by the process measured, where ``RUSAGE_CHILDREN`` would report at least
    that process's resident memory at the moment it started them (see ``peak_rss_mb``). Sampled: what a
    child adds in its last ``every`` seconds can be missed.
    """

    def __init__(self, marker: str, every: float = 0.1) -> None:
        self.marker, self.every, self.peak_mb = marker.encode(), every, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> ChildrenPeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while True:
            for pid in _children():
                try:
                    if self.marker in Path(f"/proc/{pid}/cmdline").read_bytes():
                        self.peak_mb = max(self.peak_mb, peak_rss_mb(pid))
                except OSError:     # it exited since it was listed
                    pass
            if self._stop.wait(self.every):
                return


def _children() -> list[str]:
    """Process ids of this process's children (each of its threads lists those it started)."""
    pids = []
    for listing in Path("/proc/self/task").glob("*/children"):
        try:
            pids += listing.read_text(encoding="ascii").split()
        except OSError:     # the thread ended
            pass
    return pids
