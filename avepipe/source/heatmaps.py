"""Pictures of where the sound comes from: a sound-source map over the frame, peak marked.

Colour = similarity of the second's audio embedding with each of the 7x7 visual positions,
min-max normalised per picture (so it shows *where*, not *how sure*), bilinearly upsampled
to the frame. Matplotlib's Agg canvas only: works headless and in threads.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from avepipe.source.metrics import Box, normalise_map, peak_position, upsample_map

HEATMAP_ALPHA = 0.5


def overlay_heatmap(frame: np.ndarray, grid_map: np.ndarray, path: str | Path, box: Box | None = None,
                    title: str | None = None, dpi: int = 100) -> tuple[float, float]:
    """Save ``frame`` (uint8 ``[H,W,3]``) with ``grid_map`` (``[7,7]``) overlaid as a PNG.

    The peak is marked with a cross; ``box`` (pixels of this frame), if given, is drawn in
    white for comparison. Returns the peak ``(x, y)`` in pixels of the frame.
    """
    height, width = frame.shape[:2]
    heat = normalise_map(upsample_map(grid_map, (width, height)))
    peak = peak_position(grid_map, (width, height))
    figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.imshow(frame)
    axes.imshow(heat, cmap="jet", alpha=HEATMAP_ALPHA, vmin=0.0, vmax=1.0)
    axes.plot(*peak, marker="x", color="white", markersize=max(6, width / 20), markeredgewidth=2)
    if box is not None:
        axes.add_patch(Rectangle((box[0], box[1]), box[2] - box[0], box[3] - box[1],
                                 fill=False, edgecolor="white", linewidth=1.5))
    if title:
        axes.text(4, 4, title, color="white", fontsize=8, va="top",
                  bbox=dict(facecolor="black", alpha=0.5, pad=1, linewidth=0))
    axes.set_axis_off()
    figure.savefig(path, dpi=dpi)
    return peak


def to_frame_aspect(square: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """A square decoded frame (the whole picture squeezed, as the features see it) back at the
    original ``frame_size = (width, height)`` aspect, the longer side keeping the square's size."""
    side = square.shape[0]
    width, height = frame_size
    scale = side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(square).resize(size, Image.BILINEAR))


def write_event_heatmaps(out_dir: str | Path, video_id: str, frames: dict[int, np.ndarray], maps: np.ndarray,
                         labels: dict[int, str] | None = None) -> list[dict]:
    """One PNG per event second ``t`` in ``frames`` (``{t: uint8 [H,W,3]}``), using ``maps[t]``.

    For ``avepipe localize --heatmaps DIR``: pass the frames of the event seconds only.
    Returns ``[{"second", "path", "peak": [x, y]}]`` (peak in pixels of the frame given).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for second in sorted(frames):
        label = (labels or {}).get(second)
        title = f"{video_id}  t={second}s" + (f"  {label}" if label else "")
        path = out_dir / f"{video_id}_{second:04d}.png"
        peak = overlay_heatmap(frames[second], maps[second], path, title=title)
        written.append({"second": second, "path": str(path), "peak": [round(peak[0], 1), round(peak[1], 1)]})
    return written
