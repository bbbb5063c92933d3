"""What one ``localize`` run is asked to do, as one typed object (the command builds it from its flags)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from avepipe.data.vggsound import VGGSoundFiles
from avepipe.errors import UserError

THUMBNAIL_SIZE = 96   # timeline thumbnails and explain maps
HEATMAP_SIZE = 224    # frames under a sound-source heatmap: the longer side, at the frame's aspect
HEATMAPS_FOR = ("events", "all")
NEEDS_SOURCE = "sound-source heatmaps need a sound-source checkpoint (a model from `avepipe source train`)"


@dataclass(frozen=True)
class LocalizeOptions:
    """The checkpoint(s), where features come from, and which outputs to write (None: not written).

    ``heatmaps_for``: "events" draws the event seconds' sound-source maps, "all" every second's.
    ``html_video``: how the page reaches each video (``report_html.VIDEO_MODES``).
    """

    checkpoint: Path
    source_checkpoint: Path | None = None
    annotations: Path | VGGSoundFiles | None = None      # adds the truth to the table, plots and page
    device: str | None = None
    vgg_weights: Path | None = None
    vggish_weights: Path | None = None
    json_path: Path | None = None
    csv_path: Path | None = None
    html_path: Path | None = None
    html_video: str = "link"
    plot_path: Path | None = None
    explain_dir: Path | None = None
    heatmaps_dir: Path | None = None
    heatmaps_for: str = "events"

    def __post_init__(self):
        if self.heatmaps_dir is not None and self.source_checkpoint is None:
            raise UserError(NEEDS_SOURCE)
        if self.heatmaps_for not in HEATMAPS_FOR:
            raise ValueError(f"heatmaps_for must be one of {HEATMAPS_FOR}, got {self.heatmaps_for!r}")

    @property
    def thumbnail_size(self) -> int | None:
        """Side of the frame kept per second for pictures, or None when no picture needs frames."""
        if self.heatmaps_dir is not None:
            return HEATMAP_SIZE
        return THUMBNAIL_SIZE if self.plot_path is not None else None
