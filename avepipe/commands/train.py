"""``avepipe train``: fit a registered event model on cached features with its authors' recipe."""
from __future__ import annotations

from pathlib import Path

import click

from avepipe.commands.base import Command
from avepipe.commands.options import (ANNOTATIONS, SPLITS, TRAIN_PRECISION, device_option, given_model_options,
                                      model_build_options, model_option, seed_option)
from avepipe.models.registry import AUTHORS


def _milestones(ctx, param, value: str | None):
    if value is None:
        return None
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter("expected comma-separated epoch numbers, e.g. 60,120") from None


@click.command(cls=Command)
@click.argument("caches", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--annotations", "annotations_path", type=ANNOTATIONS, required=True,
              help="Labels: AVE Annotations.txt or a CSV "
                   "(video_id,start,end,label); 'ave' is the official AVE file shipped with avepipe; "
                   "vggsound:META.csv,CATEGORIES.txt,LABELS_DIR the VGGSound-AVEL100k/50k files (docs/vggsound.md). "
                   "Class names come from here "
                   "and travel with the checkpoint.")
@click.option("--setting", type=click.Choice(["fully", "weakly"]), default="fully", show_default=True,
              help="fully: per-segment labels; weakly: video-level labels only (MIL).")
@model_option()
@click.option("--recipe", default=AUTHORS, show_default=True,
              help="Training recipe from the model registry: 'authors' is the authors' own (docs/models.md); "
                   "'small-data' (psp, cpsp; fully) is avepipe's for a few dozen training videos "
                   "(docs/baselines.md). The options below change single values of it.")
@click.option("-o", "--output", "run_dir", required=True, type=click.Path(path_type=Path),
              help="Run directory: best/, last/, metrics.csv, curves.png, splits/ (the split used).")
@click.option("--splits", "splits_dir", type=SPLITS,
              help="Directory with train/val/test_order.h5 ('ave': the official AVE splits shipped with avepipe; "
                   "default: beside the annotations file; if absent there, a seeded random split of the cached "
                   "videos).")
@click.option("--val-fraction", type=float, default=0.1, show_default=True,
              help="Validation share of a random split (ignored with official splits).")
@click.option("--test-fraction", type=float, default=0.1, show_default=True,
              help="Test share of a random split, held out and never used for training or selection.")
@click.option("--limit", type=int, help="Use only the first N videos of the train and val splits "
                                        "(smoke tests on a partial cache).")
@click.option("--background-cache", "background_caches", multiple=True, type=click.Path(path_type=Path),
              help="Extra cache of background-only videos added to training (weakly AVE: the 178 noisy "
                   "videos); every video in it is labelled background. Repeatable.")
@seed_option("initialisation, shuffling and random splits")
@device_option
@click.option("--epochs", type=int, help="Total epochs (the recipe's by default, e.g. psp 300, cpsp 45). With "
                                             "--resume, may extend a run.")
@click.option("--batch-size", type=int, help="Videos per batch (psp: 128, cpsp: 64); under torchrun the GLOBAL "
                                              "batch, split among the ranks.")
@click.option("--lr", type=float, help="Adam learning rate (psp, cpsp: 1e-3).")
@click.option("--lr-milestones", callback=_milestones,
              help="Comma-separated epochs after which the lr is multiplied by --lr-gamma (psp: 60,120; "
                   "cpsp: 10,20,30; weakly cpsp: 5,20,40).")
@click.option("--lr-gamma", type=float, help="lr decay factor at each milestone (psp: 0.8, cpsp: 0.5).")
@click.option("--clip-grad-norm", type=float, help="Clip the gradient norm to this (cpsp: 0.1; psp: no clipping).")
@model_build_options
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True),
              help="Dropout probability of every dropout layer (default: the model's own, PSP 0.1). 0 makes "
                   "torchrun training reproduce single-process losses exactly (per-rank dropout masks differ).")
@click.option("--precision", type=TRAIN_PRECISION,
              help="Training arithmetic. fp32 (default): as the authors' code. bf16: autocast for the forward "
                   "pass and the loss, weights and predictions fp32; about 3x faster on CPUs with native bf16 "
                   "and on recent GPUs, with slightly different numbers (docs/training.md).")
@click.option("--workers", type=int, default=0, show_default=True,
              help="DataLoader worker processes (each opens its own cache handles).")
@click.option("--in-memory", type=click.Choice(["auto", "yes", "no"]), default="auto", show_default=True,
              help="Hold features in RAM (auto: when they take < 40% of the available memory) or stream "
                   "them from disk.")
@click.option("--resume", is_flag=True, help="Continue the run in RUN_DIR exactly where last/ left it "
                                             "(same hyper-parameters; --epochs may extend it).")
def train(caches, annotations_path, setting, model, recipe, run_dir, splits_dir, val_fraction, test_fraction, limit,
          background_caches, seed, device, epochs, batch_size, lr, lr_milestones, lr_gamma, clip_grad_norm, dropout,
          precision, workers, in_memory, resume, **model_params):
    """Train an event model on feature CACHE(s) (the sound-source model: `avepipe source train`).

    Model selection uses validation segment accuracy only; the test split is
    never touched. Several caches must come from the same extractor.

    Distributed: run under torchrun (e.g. torchrun --nproc-per-node 4 -m avepipe
    train ...): gloo on CPU, nccl on CUDA (one GPU per rank), DDP-averaged
    gradients, --batch-size is the global batch, only rank 0 writes RUN_DIR.
    """
    from avepipe import distributed
    from avepipe.event.api import TrainOptions, train_event_model

    given = dict(epochs=epochs, batch_size=batch_size, lr=lr, lr_milestones=lr_milestones, lr_gamma=lr_gamma,
                 clip_grad_norm=clip_grad_norm, seed=seed, dropout=dropout, precision=precision)
    options = TrainOptions(
        caches=tuple(caches), annotations=annotations_path, run_dir=run_dir, model=model, setting=setting,
        recipe=recipe, schedule={k: v for k, v in given.items() if v is not None},
        model_options=given_model_options(model_params), splits_dir=splits_dir, val_fraction=val_fraction,
        test_fraction=test_fraction, limit=limit, background_caches=tuple(background_caches), device=device,
        workers=workers, in_memory={"auto": "auto", "yes": True, "no": False}[in_memory], resume=resume)
    ranks = distributed.env_ranks()
    try:
        if ranks.distributed:
            distributed.init_process_group(distributed.local_device(device, ranks))
        result = train_event_model(options, log=lambda message: click.echo(message, err=True))
    finally:
        distributed.shutdown()
    if ranks.is_main:
        click.echo(f"best validation segment accuracy {result.best_val_accuracy:.4f} at epoch {result.best_epoch}; "
                   f"checkpoint {result.run_dir / 'best'}")
