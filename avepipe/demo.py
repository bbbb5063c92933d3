"""``make demo``: the whole workflow on a small synthetic set, offline, in minutes.

synth -> extract (seeded RANDOM backbones) -> train (fully supervised PSP) ->
evaluate on held-out videos -> localize one held-out video (table, plots and
report.html, the page to watch it). Every stage calls the library function
its ``avepipe`` command calls, and first prints that command line, so a user
sees what to type to do the same by hand.

Random backbones make the demo run offline without downloading weights; their
features keep colour and spectrum, which is what the synthetic classes differ
by, but they are a smoke test, not real features.
"""
from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from avepipe.commands.base import Command

Result = TypeVar("Result")

# Sizes chosen so the demo finishes well within 15 minutes on 2 CPU cores: VGG-19 runs a
# few frames/s on such a CPU and the extractor runs each decoded frame once, so at the
# default 16 samples/s a 2 fps source costs 2 CNN passes per second of video.
VIDEOS = 60
CLASSES = 3
SECONDS = 6
SOURCE_FPS = 2
SPLIT = "0.6,0.15,0.25"  # a larger held-out test set than the default, so the accuracy means something
EPOCHS = 100
LR_MILESTONES = "40,70"  # decay the learning rate so the small run settles (the published 300-epoch schedule would not fit)
SEED = 0
OBJECT_SIZE = 0.33  # the large objects the demo's timings and accuracy were measured with (synth's default is smaller)


def stage(args: list[str], work: Callable[[], Result]) -> Result:
    """Show the ``avepipe`` command line equivalent to ``work``, then do it."""
    click.echo(click.style(f"\n$ avepipe {shlex.join(args)}", bold=True))
    started = time.monotonic()
    result = work()
    click.echo(f"  ({time.monotonic() - started:.0f} s)")
    return result


@click.command(cls=Command)
@click.option("-o", "--output", "out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("demo-output"), show_default=True, help="Folder for everything the demo writes.")
def demo(out: Path) -> None:
    """Synthesise, extract, train, evaluate and localise, end to end."""
    started = time.monotonic()
    click.echo("avepipe demo: RANDOM BACKBONES: a smoke test, not real features.\n"
               f"{VIDEOS} synthetic videos of {SECONDS} s at {SOURCE_FPS} fps, {CLASSES} classes, sampled at the "
               "standard 16 frames/s (each decoded frame runs through VGG-19 once).")
    from avepipe.data.synth import generate_dataset
    from avepipe.evaluation import evaluate_checkpoint, write_report
    from avepipe.extract.folder import extract_folder
    from avepipe.localize_videos import localize_videos
    from avepipe.runs import TrainOptions, train_event_model

    synth, cache, run_dir = out / "synth", out / "features.h5", out / "run"
    annotations = synth / "Annotations.txt"
    fractions = tuple(float(f) for f in SPLIT.split(","))
    stage(["synth", str(synth), "--videos", str(VIDEOS), "--classes", str(CLASSES), "--seconds", str(SECONDS),
           "--fps", str(SOURCE_FPS), "--split", SPLIT, "--seed", str(SEED),
           "--object-size", str(OBJECT_SIZE)],
          lambda: generate_dataset(synth, videos=VIDEOS, classes=CLASSES, seconds=SECONDS, fps=SOURCE_FPS,
                                   split_fractions=fractions, seed=SEED, object_size=OBJECT_SIZE))
    extraction = stage(["extract", str(synth / "videos"), "-o", str(cache), "--random-backbones", str(SEED)],
                       lambda: extract_folder(synth / "videos", cache, random_seed=SEED))
    click.echo(extraction.summary(), err=True)
    if extraction.failures:
        raise SystemExit("demo stopped: some synthetic videos could not be extracted")
    hyper = dict(epochs=EPOCHS, lr_milestones=tuple(int(e) for e in LR_MILESTONES.split(",")), lr_gamma=0.3,
                 batch_size=16, seed=SEED)
    stage(["train", str(cache), "--annotations", str(annotations), "--setting", "fully", "--model", "psp",
           "--epochs", str(EPOCHS), "--lr-milestones", LR_MILESTONES, "--lr-gamma", "0.3", "--batch-size", "16",
           "--seed", str(SEED), "-o", str(run_dir)],
          lambda: train_event_model(TrainOptions(caches=(cache,), annotations=annotations, run_dir=run_dir,
                                                 model="psp", setting="fully", schedule=hyper)))
    report = stage(["evaluate", str(run_dir / "best"), str(cache), "--annotations", str(annotations),
                    "--split", "test", "-o", str(out / "evaluation")],
                   lambda: evaluate_checkpoint(run_dir / "best", [cache], annotations, "test"))
    write_report(out / "evaluation", report)
    click.echo(report.table())
    held_out = _first_test_event_video(synth)
    plot, page = out / "localize.png", out / "report.html"
    stage(["localize", str(synth / "videos" / f"{held_out}.mp4"), "-c", str(run_dir / "best"),
           "--annotations", str(annotations), "--plot", str(plot), "--explain", str(out / "explain"),
           "--json", str(out / "localize.json"), "--html", str(page)],
          lambda: localize_videos([synth / "videos" / f"{held_out}.mp4"], run_dir / "best",
                                  annotations_path=annotations, plot_path=plot, explain_dir=out / "explain",
                                  json_path=out / "localize.json", html_path=page, echo=click.echo))

    click.echo(click.style("\nsummary (random backbones: a smoke test, not real features)", bold=True))
    click.echo(f"  held-out segment accuracy: {100 * report.segment_accuracy:.1f}% "
               f"(test split, {report.videos} videos never used for training or model selection)")
    click.echo(f"  page to watch:             {page}  (open it in a browser)")
    click.echo(f"  timeline plot:             {plot}")
    click.echo(f"  explain pictures:          {out / 'explain'}")
    click.echo(f"  total time:                {time.monotonic() - started:.0f} s")


def _first_test_event_video(synth: Path) -> str:
    """A held-out video that has an event, so the localisation has something to show."""
    from avepipe.data.annotations import load_ave_annotations
    from avepipe.data.splits import load_official_splits

    annotations = load_ave_annotations(synth / "Annotations.txt")
    test_ids = load_official_splits(synth, annotations)["test"]
    with_event = [v for v in test_ids if annotations.events(v)]
    return (with_event or test_ids)[0]


if __name__ == "__main__":
    demo()
