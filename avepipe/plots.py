"""Pictures of a localisation: the timeline figure and one "explain" figure per name.

Drawn on ``matplotlib.figure.Figure`` objects, never pyplot, so importing avepipe does
not change the backend of a notebook or an application. Long videos are
subsampled to at most ``MAX_PANELS`` thumbnails or maps so the
figure stays readable; the timeline itself always shows every second.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import hsv_to_rgb, to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from avepipe.grid_maps import upsample_map
from avepipe.results import LocalizationResult, explain_kind

MAX_PANELS = 30
BACKGROUND_COLOUR = "#d9d9d9"


def label_colours(class_names: list[str]) -> dict[str, tuple]:
    """A fixed, distinct colour per class (same class, same colour in every figure); background light grey.

    The first 29 classes (AVE's 28 and more) take hand-picked qualitative colours; further classes
    (VGGSound-AVEL has 141) step the hue by the golden angle at three saturation/value levels, so no
    two classes share a colour and neighbouring class indices differ visibly.
    """
    tab10 = [c for i, c in enumerate(colormaps["tab10"].colors) if i != 7]  # index 7 is grey: background's
    palette = tab10 + list(colormaps["tab20b"].colors)
    colours = {name: to_rgba(palette[i] if i < len(palette) else _golden_colour(i - len(palette)))
               for i, name in enumerate(class_names)}
    colours[class_names[-1]] = to_rgba(BACKGROUND_COLOUR)
    return colours


def _golden_colour(index: int) -> tuple[float, float, float]:
    hue = (0.07 + index * 0.618033988749895) % 1.0
    saturation, value = ((0.85, 0.80), (0.55, 0.95), (0.95, 0.55))[index % 3]
    return tuple(hsv_to_rgb((hue, saturation, value)))


def panel_seconds(length: int, limit: int = MAX_PANELS) -> np.ndarray:
    """Which seconds get a picture: all of them, or ``limit`` evenly spread ones."""
    if length <= limit:
        return np.arange(length)
    return np.unique(np.linspace(0, length - 1, limit).round().astype(int))


def _draw_timeline(ax, labels: list[str], colours: dict[str, tuple], title: str) -> None:
    for t, label in enumerate(labels):
        ax.add_patch(Rectangle((t, 0), 1, 1, facecolor=colours[label], edgecolor="white", linewidth=0.5))
    ax.set_xlim(0, len(labels))
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    ax.set_ylabel(title, rotation=0, ha="right", va="center")
    step = max(1, len(labels) // 20)
    ax.set_xticks(np.arange(0, len(labels) + 1, step))


def plot_timeline(result: LocalizationResult, path: str | Path, class_names: list[str],
                  truth: list[str] | None = None) -> Path:
    """Thumbnails (when the result has them) above the predicted timeline, and the truth below it."""
    path = Path(path)
    colours = label_colours(class_names)
    length = len(result.segments)
    shown = panel_seconds(length)
    rows = (1 if result.thumbnails is not None else 0) + 1 + (1 if truth is not None else 0)
    heights = ([2.0] if result.thumbnails is not None else []) + [0.6] * (rows - (result.thumbnails is not None))
    fig = Figure(figsize=(max(8.0, 0.6 * len(shown) + 2), sum(heights) + 1.6))
    grid = fig.add_gridspec(rows, 1, height_ratios=heights, hspace=0.35)
    row = 0
    if result.thumbnails is not None:
        strip = fig.add_subplot(grid[row])
        strip.imshow(np.concatenate([result.thumbnails[t] for t in shown], axis=1))
        width = result.thumbnails.shape[2]
        strip.set_xticks((np.arange(len(shown)) + 0.5) * width, [f"{t}s" for t in shown], fontsize=7)
        strip.set_yticks([])
        row += 1
    _draw_timeline(fig.add_subplot(grid[row]), result.labels, colours, "predicted")
    row += 1
    if truth is not None:
        _draw_timeline(fig.add_subplot(grid[row]), truth, colours, "truth")
    used = sorted(set(result.labels) | set(truth or []), key=class_names.index)
    fig.legend(handles=[Patch(facecolor=colours[name], label=name) for name in used],
               loc="lower center", ncol=min(len(used), 6), fontsize=8, frameon=False)
    fig.suptitle(f"{result.video}: {len(result.intervals)} event interval(s)", fontsize=10)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def plot_explain(result: LocalizationResult, name: str, path: str | Path) -> Path:
    """The picture of ``result.explain[name]``, drawn as its shape says (``explain_kind``)."""
    drawers = {"matrix": _plot_matrix, "maps": _plot_maps, "values": _plot_values}
    return drawers[explain_kind(result.explain[name])](result, name, Path(path))


def _plot_matrix(result: LocalizationResult, name: str, path: Path) -> Path:
    """A ``[T, T]`` second-to-second matrix as a heatmap; grey cells are pairs of seconds the model
    never related (never in one window)."""
    fig = Figure(figsize=(6.5, 5.5), layout="constrained")
    ax = fig.subplots()
    cmap = colormaps["viridis"].with_extremes(bad="#bbbbbb")
    image = ax.imshow(np.ma.masked_invalid(result.explain[name]), cmap=cmap, interpolation="nearest")
    ax.set_ylabel("second (row)")
    ax.set_xlabel("second (column)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.colorbar(image, ax=ax, shrink=0.8)
    fig.suptitle(f"{result.video}: {name}", fontsize=11)
    fig.savefig(path, dpi=100)
    return path


def _plot_maps(result: LocalizationResult, name: str, path: Path, columns: int = 10) -> Path:
    """Each second's frame with its ``[h, w]`` map upsampled and overlaid."""
    maps = result.explain[name]
    shown = panel_seconds(len(maps))
    columns = min(columns, len(shown))
    rows = int(np.ceil(len(shown) / columns))
    fig = Figure(figsize=(1.6 * columns, 1.9 * rows))
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, t in zip(axes.ravel(), shown):
        frame = result.thumbnails[t]
        ax.imshow(frame)
        ax.imshow(upsample_map(maps[t], (frame.shape[1], frame.shape[0])), cmap="jet", alpha=0.45,
                  extent=(-0.5, frame.shape[1] - 0.5, frame.shape[0] - 0.5, -0.5))
        ax.set_title(f"{t}s {result.segments[t].label}"[:22], fontsize=7)
    fig.suptitle(f"{result.video}: {name}", fontsize=11)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def _plot_values(result: LocalizationResult, name: str, path: Path) -> Path:
    """Per-second numbers ``[T]`` or ``[T, K]`` as one line per column."""
    values = result.explain[name]
    fig = Figure(figsize=(max(6.0, 0.25 * len(values) + 2), 3.5), layout="constrained")
    ax = fig.subplots()
    ax.plot(np.arange(len(values)) + 0.5, values.reshape(len(values), -1), marker=".")
    ax.set_xlim(0, len(values))
    ax.set_xlabel("second")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(f"{result.video}: {name}", fontsize=11)
    fig.savefig(path, dpi=100)
    return path
