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
