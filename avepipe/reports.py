"""The one writer of an evaluation's ``metrics.json``, for the reports of both tasks (``to_json()``)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol


class Report(Protocol):
    def to_json(self) -> dict: ...


def write_metrics_json(out_dir: Path, report: Report) -> Path:
    """``out_dir/metrics.json`` (``out_dir`` created if needed): the report's ``to_json()``, indented."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "metrics.json"
    path.write_text(json.dumps(report.to_json(), indent=1) + "\n", encoding="utf-8")
    return path
