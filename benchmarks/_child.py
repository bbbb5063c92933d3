"""Benchmarks measure each case in a fresh process, so that its peak RSS is its own."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def run_child(script: str | Path, arguments: list[str]) -> dict:
    """Run ``script arguments`` with this Python; the child's last stdout line is its JSON result."""
    out = subprocess.run([sys.executable, str(script), *arguments], check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def peak_rss_mb() -> float:
    """This process's own peak resident memory (VmHWM of its address space, MiB).

    Not ``ru_maxrss``: after fork + exec that keeps the high-water mark of the forked copy of the parent, so
    a child spawned by a parent holding 600 MB reports at least 600 MB whatever it did itself.
    """
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise OSError("no VmHWM in /proc/self/status")
