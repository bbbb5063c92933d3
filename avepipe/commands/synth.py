"""`avepipe synth`: write a synthetic AVE-like dataset of real MP4 files with known labels."""
from __future__ import annotations

import click

from avepipe.commands.base import Command
from avepipe.errors import UserError


def _parse_size(ctx, param, value: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected WIDTHxHEIGHT such as 160x120, got {value!r}") from None
    return width, height


def _parse_fractions(ctx, param, value: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(v) for v in value.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3:
        raise click.BadParameter(f"expected three comma-separated fractions such as 0.8,0.1,0.1, got {value!r}")
    return parts


@click.command(cls=Command)
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--videos", default=40, show_default=True, help="Number of videos to write.")
@click.option("--classes", default=4, show_default=True,
              help="Number of event classes (1-10); each is an object with its own colour, shape and sound.")
@click.option("--seconds", default=10, show_default=True, help="Length of every video in seconds (AVE: 10).")
@click.option("--seed", default=0, show_default=True, help="Random seed: the same seed writes the same dataset.")
@click.option("--size", default="160x120", show_default=True, callback=_parse_size,
              help="Frame size WIDTHxHEIGHT in pixels.")
@click.option("--fps", default=8, show_default=True, help="Frame rate of the written videos.")
@click.option("--sample-rate", default=16000, show_default=True, help="Audio sample rate in Hz (AAC).")
@click.option("--channels", default=1, show_default=True, type=click.IntRange(1, 2),
              help="Audio channels: 1 (mono) or 2 (stereo).")
@click.option("--background-fraction", default=0.15, show_default=True, type=click.FloatRange(0, 1),
              help="Fraction of videos without any event.")
@click.option("--split", "split_fractions", default="0.8,0.1,0.1", show_default=True, callback=_parse_fractions,
              help="Train,val,test fractions of the seeded stratified split written as *_order.h5.")
@click.option("--object-size", default=0.12, show_default=True, type=click.FloatRange(0.02, 0.5),
              help="Radius of the class objects as a share of the shorter frame side (distractors: 0.6 of it). "
                   "0.12 keeps the best single fixed grid cell below 0.4 peak-in-box on the sounding-object "
                   "boxes; 0.33 is the earlier size (objects a quarter of the frame or more).")
@click.option("--format", "label_format", type=click.Choice(["ave", "vggsound-avel"]), default="ave",
              show_default=True,
              help="vggsound-avel: also write metadata.csv, categories.txt and labels/VIDEO_ID.zip, the "
                   "VGGSound-AVEL100k files (docs/vggsound.md); every video then has an event "
                   "(--background-fraction 0).")
@click.pass_context
def synth(ctx, out_dir, videos, classes, seconds, seed, size, fps, sample_rate, channels, background_fraction,
          split_fractions, object_size, label_format):
    """Write OUT_DIR/videos/*.mp4 (H.264 + AAC) plus Annotations.txt (AVE format), annotations.csv,
    train/val/test_order.h5, boxes.json (box of the sounding object per second; frame_boxes.json:
    per frame) and scenes.json (what is seen and heard each second)."""
    from avepipe.data.synth import generate_dataset

    if label_format == "vggsound-avel":
        if ctx.get_parameter_source("background_fraction") != click.core.ParameterSource.DEFAULT \
                and background_fraction > 0:
            raise UserError("--format vggsound-avel: VGGSound-AVEL has no background-only videos, "
                            "use --background-fraction 0")
        background_fraction = 0.0
    dataset = generate_dataset(out_dir, videos=videos, classes=classes, seconds=seconds, seed=seed, size=size,
                               fps=fps, sample_rate=sample_rate, channels=channels,
                               background_fraction=background_fraction, split_fractions=split_fractions,
                               object_size=object_size)
    if label_format == "vggsound-avel":
        from avepipe.data.vggsound import write_synth_as_vggsound

        click.echo(f"VGGSound-AVEL files: --annotations {write_synth_as_vggsound(dataset, seconds)}")
    sizes = ", ".join(f"{name} {len(ids)}" for name, ids in dataset.splits.items())
    click.echo(f"wrote {len(dataset.videos)} videos to {dataset.root / 'videos'} ({sizes})")
    click.echo(f"annotations: {dataset.annotations_path}")
    for cls in dataset.classes:
        click.echo(f"  class {cls.index}: {cls.name}")
