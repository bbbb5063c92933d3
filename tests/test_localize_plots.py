"""Pictures are drawn on Figure objects: importing or calling avepipe's plotting leaves matplotlib's backend alone."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PIL import Image

# Runs in a fresh interpreter: in this one, another test may already have imported the modules.
SCRIPT = """
import sys
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("pdf")   # a user's choice, e.g. a notebook's inline backend
import avepipe.event.evaluation, avepipe.plots, avepipe.source.heatmaps, avepipe.source.training, avepipe.run.logs
after_import = matplotlib.get_backend()

from avepipe.results import LocalizationResult, SegmentPrediction

out = Path(sys.argv[1])
names = ["dog", "background"]
segments = [SegmentPrediction(t, names[t % 2], 0.9) for t in range(4)]
result = LocalizationResult("v", 4.0, True, segments, [], [])
result.thumbnails = np.zeros((4, 32, 32, 3), np.uint8)
result.explain = {"maps": np.ones((4, 7, 7), np.float32) / 49, "matrix": np.eye(4, dtype=np.float32),
                  "values": np.arange(4, dtype=np.float32)}
avepipe.plots.plot_timeline(result, out / "timeline.png", names, truth=names * 2)
for name in result.explain:
    avepipe.plots.plot_explain(result, name, out / f"{name}.png")
report = avepipe.event.evaluation.build_report(np.array([[0, 1]]), np.array([[0, 0]]), names, "test")
avepipe.event.evaluation.plot_confusion(out / "confusion.png", report)
avepipe.run.logs.plot_curves(out / "curves.png", [{"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "val_acc": 0.5}],
                             ("train_acc", "val_acc"), "segment accuracy")
print(after_import, matplotlib.get_backend())
"""


def test_importing_and_plotting_leave_the_backend_unchanged(tmp_path):
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["pdf", "pdf"]
    for name in ("timeline", "maps", "matrix", "values", "confusion", "curves"):
        with Image.open(tmp_path / f"{name}.png") as image:
            assert image.format == "PNG" and image.size[0] > 100


def test_every_class_of_a_141_class_dataset_gets_its_own_colour():
    import numpy as np
    from avepipe.plots import BACKGROUND_COLOUR, label_colours
    from matplotlib.colors import to_rgba

    names = [f"class {i}" for i in range(141)] + ["background"]
    colours = label_colours(names)
    rgb = np.array([colours[n][:3] for n in names[:-1]])
    distances = np.linalg.norm(rgb[:, None] - rgb[None], axis=-1) + np.eye(len(rgb))
    assert distances.min() > 0.02                                   # no two classes share a colour
    assert colours["background"] == to_rgba(BACKGROUND_COLOUR)
    assert all(np.ptp(c) > 0.15 for c in rgb)                        # no class looks like the grey background
    assert label_colours(names[:5] + ["background"])["class 3"] == colours["class 3"]   # stable across figures
