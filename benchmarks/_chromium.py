"""Where the system Chromium is (the browser tests and benchmarks/html_report.py drive it; no browser download)."""
from __future__ import annotations

import os
import shutil


def chromium_path() -> str | None:
    """``$AVEPIPE_CHROMIUM``, else the first Chromium on PATH."""
    found = [os.environ.get("AVEPIPE_CHROMIUM")] + [shutil.which(n) for n in ("chromium", "chromium-browser")]
    return next((path for path in found if path), None)
