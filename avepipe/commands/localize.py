"""``avepipe localize``: raw videos in, a table of their audio-visual events out (and JSON/CSV/pictures)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from avepipe.commands.base import Command
from avepipe.commands.options import ANNOTATIONS, device_option
from avepipe.errors import UserError
from avepipe.localize_options import HEATMAPS_FOR, LocalizeOptions
from avepipe.localize_videos import localize_videos
from avepipe.models.checkpoint import WrongTaskError
from avepipe.report_html import VIDEO_MODES

NO_CHECKPOINT = ("no checkpoint: give -c DIR or set AVEPIPE_CHECKPOINT; get one by training (`avepipe train`) "
                 "or by importing the authors' released weights (`avepipe import-checkpoint`)")


@click.command(cls=Command)
@click.argument("videos", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-c", "--checkpoint", envvar="AVEPIPE_CHECKPOINT", type=click.Path(path_type=Path),
              help="Checkpoint directory (from `avepipe train` or `import-checkpoint`; default: "
                   "$AVEPIPE_CHECKPOINT); its recorded extractor (backbones, weights, fps) is rebuilt exactly.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write all results as JSON (schema: python -m avepipe.localize_schema).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write per-second rows and merged intervals as CSV.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write one self-contained page to watch the results (player, timeline, probabilities, events; "
                   "with --source-checkpoint / --explain their maps too). Opens offline from disk.")
@click.option("--html-video", type=click.Choice(VIDEO_MODES), default="link", show_default=True,
              help="How the page reaches each video: link (relative path to the original), copy (into "
                   "PAGE_media/ beside the page), transcode (like copy, but videos browsers cannot play are "
                   "re-encoded to H.264/AAC MP4 with PyAV).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              help="PNG: one thumbnail per second above the predicted timeline (FILE_<video>.png for several).")
@click.option("--explain", "explain_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for one picture per array the model explains (what its explain() returns: e.g. "
                   "matrices between seconds, maps over the frame), also written to the JSON and the page.")
@click.option("--source-checkpoint", type=click.Path(path_type=Path),
              help="Sound-source checkpoint (`avepipe source train`, same extractor as -c): adds where "
                   "the sound comes from, the peak (x, y in frame pixels) of each event second, to the table "
                   "and JSON.")
@click.option("--heatmaps", "heatmaps_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for one picture per event second: the frame with the sound-source heatmap overlaid "
                   "and its peak marked (needs --source-checkpoint).")
@click.option("--heatmaps-for", "heatmaps_for", type=click.Choice(HEATMAPS_FOR), default="events",
              show_default=True,
              help="--heatmaps: draw the seconds the event model calls events, or all seconds (to look at where "
                   "the sound is even when no event is found).")
@click.option("--annotations", "annotations", type=ANNOTATIONS,
              help="AVE Annotations.txt or CSV ('ave': the official AVE file shipped with avepipe): adds the ground "
                   "truth to plots and prints the accuracy.")
@device_option
@click.option("--vgg-weights", type=click.Path(path_type=Path), default=None,
              help="VGG-19 weights file, if the checkpoint's extractor used pretrained weights (offline use).")
@click.option("--vggish-weights", type=click.Path(path_type=Path), default=None,
              help="VGGish weights file (pytorch_vggish.pth), for offline use.")
def localize(videos: tuple[Path, ...], checkpoint: Path | None, **flags) -> None:
    """Find the audio-visual events in VIDEOS (files or folders) with a trained checkpoint.

    Prints, per video, each second's label and confidence, then the merged event
    intervals. Videos of any length: the model runs on overlapping windows of its
    training length and each second's scores are averaged. Files that cannot be read
    are reported one line each and skipped (exit status 2).
    """
    if checkpoint is None:
        raise UserError(NO_CHECKPOINT)
    if flags["heatmaps_dir"] and not flags["source_checkpoint"]:
        raise UserError("--heatmaps needs --source-checkpoint (a model from `avepipe source train`)")
    try:
        ok = localize_videos(videos, LocalizeOptions(checkpoint=checkpoint, **flags), echo=click.echo)
    except WrongTaskError as error:   # the library says what the checkpoint is; which flag takes it is ours
        flag = "--source-checkpoint" if error.found == "source" else "-c/--checkpoint"
        raise UserError(f"{error.problem}; give it as {flag}") from None
    sys.exit(0 if ok else 2)
