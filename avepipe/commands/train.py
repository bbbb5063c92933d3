"""``avepipe train``: fit a PSP/CPSP model on cached features with the published schedule."""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import click

from avepipe.commands.task_options import all_options_but, refuse_options_outside
from avepipe.commands.options import ANNOTATIONS, SPLITS
from avepipe.errors import UserError

_SHARED_OPTIONS = ("task", "caches", "run_dir", "seed", "device", "epochs", "batch_size", "lr", "val_fraction",
                   "test_fraction")
_SOURCE_OPTIONS = ("no_fns", "no_tne", "boxes_path", "schedule")
_HYPER = ("tau", "epochs", "batch_size", "lr", "lr_milestones", "lr_gamma", "clip_grad_norm", "seed", "dropout")


def resolve_splits(annotations, annotations_path: Path, splits_dir: Path | None, available: set[str],
                   val_fraction: float, test_fraction: float, seed: int) -> tuple[dict[str, list[str]], str]:
    """Official ``*_order.h5`` splits (``--splits`` or beside the annotations), else a seeded random split
    of the cached videos. Returns the splits and a one-line description of where they came from.
    """
    from avepipe.data.annotations import Annotations
    from avepipe.data.splits import find_split_dir, load_official_splits, random_split

    if splits_dir and not find_split_dir([splits_dir]):
        raise UserError(f"{splits_dir}: needs train_order.h5, val_order.h5 and test_order.h5")
    directory = find_split_dir([splits_dir, annotations_path.parent])
    if directory:
        return load_official_splits(directory, annotations), f"official splits from {directory}"
    present = [k for k in annotations.video_ids if annotations.source_id(k) in available]
    if not present:
        raise UserError(f"{annotations_path}: none of its videos is in the cache")
    subset = Annotations([annotations.record(k) for k in present], annotations.event_classes, annotations.source)
    fractions = (1.0 - val_fraction - test_fraction, val_fraction, test_fraction)
    return random_split(subset, fractions, seed=seed), f"random split (seed {seed}, fractions {fractions})"


def _milestones(ctx, param, value: str | None):
    if value is None:
        return None
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter("expected comma-separated epoch numbers, e.g. 60,120") from None


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--task", type=click.Choice(["event", "source"]), default="event", show_default=True,
              help="event: PSP/CPSP, needs --annotations. source: the FNAC sound-source localiser, "
                   "self-supervised (no labels), trained on (video, second) pairs with --schedule.")
@click.argument("caches", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--annotations", "annotations_path", type=ANNOTATIONS,
              help="Labels (required for --task event): AVE Annotations.txt or a CSV "
                   "(video_id,start,end,label); 'ave' is the official AVE file shipped with avepipe. "
                   "Class names come from here "
                   "and travel with the checkpoint.")
@click.option("--setting", type=click.Choice(["fully", "weakly"]), default="fully", show_default=True,
              help="fully: per-segment labels; weakly: video-level labels only (MIL).")
@click.option("--model", type=click.Choice(["psp", "cpsp"]), default="psp", show_default=True,
              help="psp (CVPR 2021) or cpsp (TPAMI extension, fully supervised only).")
@click.option("-o", "--output", "run_dir", required=True, type=click.Path(path_type=Path),
              help="Run directory: best/, last/, metrics.csv, curves.png, splits/ (the split used); "
                   "--task source: checkpoint/, metrics.csv, loss.png.")
@click.option("--splits", "splits_dir", type=SPLITS,
              help="Directory with train/val/test_order.h5 ('ave': the official AVE splits shipped with avepipe; default: beside the annotations file; "
                   "if absent there, a seeded random split of the cached videos).")
@click.option("--val-fraction", type=float, default=0.1, show_default=True,
              help="Validation share of a random split (ignored with official splits).")
@click.option("--test-fraction", type=float, default=0.1, show_default=True,
              help="Test share of a random split, held out and never used for training or selection.")
@click.option("--limit", type=int, help="Use only the first N videos of the train and val splits "
                                        "(smoke tests on a partial cache).")
@click.option("--background-cache", "background_caches", multiple=True, type=click.Path(path_type=Path),
              help="Extra cache of background-only videos added to training (weakly AVE: the 178 noisy "
                   "videos); every video in it is labelled background. Repeatable.")
@click.option("--seed", type=int, help="Seed of initialisation, shuffling and random splits. [default: 0]")
@click.option("--device", help="torch device. [default: cuda if available, else cpu]")
@click.option("--epochs", type=int, help="Total epochs (psp: 300, cpsp: 45, source: from --schedule). With --resume, may "
                                             "extend a run.")
@click.option("--batch-size", type=int, help="Videos per batch (psp: 128, cpsp: 64); under torchrun the GLOBAL "
                                              "batch, split among the ranks.")
@click.option("--lr", type=float, help="Adam learning rate. [default: 1e-3; source: from --schedule]")
@click.option("--lr-milestones", callback=_milestones,
              help="Comma-separated epochs after which the lr is multiplied by --lr-gamma (psp: 60,120; "
                   "cpsp: 10,20,30).")
@click.option("--lr-gamma", type=float, help="lr decay factor at each milestone (psp: 0.8, cpsp: 0.5).")
@click.option("--clip-grad-norm", type=float, help="Clip the gradient norm to this (cpsp: 0.1; psp: no clipping).")
@click.option("--tau", type=float, help="PSP pruning threshold (fully/cpsp: 0.099, weakly: 0.095). "
                                        "'-inf' keeps all connections; 'inf' disables propagation ('w/o PSP').")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True),
              help="Dropout probability of every dropout layer (default: the model's own, PSP 0.1). 0 makes "
                   "torchrun training reproduce single-process losses exactly (per-rank dropout masks differ).")
@click.option("--workers", type=int, default=0, show_default=True,
              help="DataLoader worker processes (each opens its own cache handles).")
@click.option("--in-memory", type=click.Choice(["auto", "yes", "no"]), default="auto", show_default=True,
              help="Hold features in RAM (auto: when they take < 40% of the available memory) or stream "
                   "them from disk.")
@click.option("--resume", is_flag=True, help="Continue the run in RUN_DIR exactly where last/ left it "
                                             "(same hyper-parameters; --epochs may extend it).")
@click.option("--no-fns", is_flag=True, help="--task source: without false-negative suppression.")
@click.option("--no-tne", is_flag=True, help="--task source: without true-negative enhancement (with --no-fns: "
                                             "the plain contrastive baseline).")
@click.option("--schedule", type=click.Choice(["small-data", "authors"]), default="small-data", show_default=True,
              help="--task source: small-data (measured on a few hundred videos, docs/baselines.md): --epochs 30, "
                   "--batch-size 32, --lr 1e-3, 1 contrastive-only epoch, no input dropout, softmax pooling of "
                   "the maps; authors (their train.py): --epochs 20, "
                   "--batch-size 128, --lr 1e-4, 3 contrastive-only epochs, input dropout 0.9, max pooling. Both: Adam, weight decay 1e-4. "
                   "--epochs/--batch-size/--lr override.")
@click.option("--boxes", "boxes_path", type=click.Path(path_type=Path),
              help="--task source: boxes.json of the cache's videos; the epoch with the best validation "
                   "peak-in-box is kept (without it, the last epoch).")
@click.pass_context
def train(ctx, task, caches, annotations_path, setting, model, run_dir, splits_dir, val_fraction, test_fraction, limit,
          background_caches, seed, device, epochs, batch_size, lr, lr_milestones, lr_gamma, clip_grad_norm, tau,
          dropout, workers, in_memory, resume, no_fns, no_tne, schedule, boxes_path):
    """Train a PSP/CPSP model (--task source: the FNAC sound-source localiser) on feature CACHE(s).

    Model selection uses validation segment accuracy only; the test split is
    never touched. Several caches must come from the same extractor.

    Distributed: run under torchrun (e.g. torchrun --nproc-per-node 4 -m avepipe
    train ...): gloo on CPU, nccl on CUDA (one GPU per rank), DDP-averaged
    gradients, --batch-size is the global batch, only rank 0 writes RUN_DIR.
    """
    from avepipe import distributed

    ranks = distributed.env_ranks()
    try:
        if ranks.distributed:
            distributed.init_process_group(distributed.local_device(device, ranks))
        if task == "source":
            return _train_source(locals())
        result = _train(locals())
    except UserError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    finally:
        distributed.shutdown()
    if not ranks.is_main:
        return
    click.echo(f"best validation segment accuracy {result.best_val_accuracy:.4f} at epoch {result.best_epoch}; "
               f"checkpoint {result.run_dir / 'best'}")


def _train(opts: dict):
    from avepipe import baselines
    from avepipe.data.annotations import load_annotations
    from avepipe.data.cache import FeatureCache
    from avepipe.data.dataset import MEMORY_SHARE, FeatureDataset, available_memory_bytes, estimated_bytes
    from avepipe.data.splits import write_splits
    from avepipe.models import build_model
    from avepipe import distributed
    from avepipe.training import Trainer, check_same_extractor, defaults_for, seed_everything, stored_run

    ctx: click.Context = opts["ctx"]
    refuse_options_outside(ctx, all_options_but(ctx, _SOURCE_OPTIONS), "event")
    if opts["annotations_path"] is None:
        raise UserError("--annotations is required for --task event (labels; --task source needs none)")
    run_dir: Path = opts["run_dir"]
    given = {k: opts[k] for k in _HYPER
             if ctx.get_parameter_source(k) not in (click.core.ParameterSource.DEFAULT, None)}
    opened = [FeatureCache(p) for p in [*opts["caches"], *opts["background_caches"]]]
    extractor = check_same_extractor([(str(c.path), c.config) for c in opened])

    if opts["resume"]:
        config, run_extractor, class_names = stored_run(run_dir)
        diff = run_extractor.differences(extractor)
        if diff:
            raise UserError(f"{opened[0].path}: extractor differs from the run in {run_dir} "
                            f"(run vs cache: {'; '.join(diff)}); resume with the run's cache")
        changed = [f"{k}: run {getattr(config, k)!r} vs given {v!r}" for k, v in given.items()
                   if k != "epochs" and getattr(config, k) != v]
        if changed:
            raise UserError(f"{run_dir}: --resume keeps the run's hyper-parameters; differing: {'; '.join(changed)}")
        if "epochs" in given:
            config = replace(config, epochs=given["epochs"])
    else:
        if (run_dir / "last").exists():
            raise UserError(f"{run_dir}: already holds a run; use --resume to continue it or another -o")
        config = defaults_for(opts["model"], opts["setting"], **given)

    annotations = load_annotations(opts["annotations_path"])
    if opts["resume"] and class_names != annotations.classes:
        raise UserError(f"{opts['annotations_path']}: class list differs from the run's checkpoint")
    available = {vid for c in opened[:len(opts["caches"])] for vid in c.ids}
    splits, origin = resolve_splits(annotations, opts["annotations_path"], opts["splits_dir"], available,
                                    opts["val_fraction"], opts["test_fraction"], config.seed)
    train_ids, val_ids = splits["train"], splits["val"]
    if opts["limit"]:
        train_ids, val_ids = train_ids[:opts["limit"]], val_ids[:opts["limit"]]
    if not train_ids or not val_ids:
        raise UserError(f"{opts['annotations_path']}: empty train or validation split ({origin})")
    ranks = distributed.env_ranks()
    if ranks.is_main:
        click.echo(f"{origin}: {len(train_ids)} train, {len(val_ids)} val videos", err=True)
        (run_dir / "splits").mkdir(parents=True, exist_ok=True)
        write_splits(run_dir / "splits", annotations, splits)    # evaluate finds the same held-out videos here

    memory = {"auto": "auto", "yes": True, "no": False}[opts["in_memory"]]
    if memory == "auto" and ranks.local_world_size > 1:
        # Every rank on this machine would hold its own copy: decide for all of them together.
        segments = opened[0].summary(opened[0].ids[0]).segments
        memory = (estimated_bytes((len(train_ids) + len(val_ids)) * ranks.local_world_size, segments)
                  < MEMORY_SHARE * available_memory_bytes())
    train_set = FeatureDataset(opts["caches"], annotations, train_ids, in_memory=memory,
                               background_caches=opts["background_caches"])
    val_set = FeatureDataset(opts["caches"], annotations, val_ids, in_memory=memory)

    seed_everything(config.seed)
    net = build_model(config.model, config.setting, tau=config.tau, num_classes=len(annotations.classes) - 1)
    device = distributed.local_device(opts["device"], ranks) if ranks.distributed else opts["device"]
    trainer = Trainer(net, config, train_set, val_set, run_dir, annotations.classes, extractor,
                      device=device, workers=opts["workers"])
    if opts["resume"]:
        trainer.resume()
    if ranks.is_main:
        _warn(baselines.few_steps_warning(len(train_set), config.batch_size, config.epochs))
    result = trainer.fit()
    if ranks.is_main:
        majority = baselines.majority_accuracy(train_set.segment_labels, val_set.segment_labels)
        _warn(baselines.near_majority_warning(result.best_val_accuracy, majority))
    return result


def _warn(message: str | None) -> None:
    if message:
        click.echo(message, err=True)


def _train_source(opts: dict) -> None:
    """``--task source``: train the FNAC localiser (avepipe/source_api.py) with the chosen schedule."""
    from avepipe.source_api import run_source_training
    from avepipe.source_training import SCHEDULES

    refuse_options_outside(opts["ctx"], _SHARED_OPTIONS + _SOURCE_OPTIONS, "source")
    given = {**SCHEDULES[opts["schedule"]],
             **{k: opts[k] for k in ("epochs", "batch_size", "lr", "seed") if opts[k] is not None}}
    checkpoint = run_source_training(opts["caches"], opts["run_dir"], opts["boxes_path"], opts["val_fraction"],
                                     opts["test_fraction"], device=opts["device"], use_fns=not opts["no_fns"],
                                     use_tne=not opts["no_tne"], **given)
    click.echo(f"sound-source checkpoint {checkpoint}; loss curves {opts['run_dir'] / 'loss.png'}")
