"""FNAC against the plain contrastive baseline on the moving-sources set, in one seeded run.

Shared by the acceptance test, ``benchmarks/source_localisation.py`` and the README picture,
so the three report the same experiment at different sizes.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from avepipe.source.api import load_source_localizer, parse_boxes
from avepipe.source.evaluation import evaluate_localizer
from avepipe.source.training import SourceTrainConfig, train_source_localizer
from benchmarks.generators.moving_sources import InMemoryCache, MovingSourceSpec, make_moving_sources

VARIANTS = {"fnac": dict(use_fns=True, use_tne=True), "baseline": dict(use_fns=False, use_tne=False)}


def compare_fnac_baseline(out_dir: str | Path, train: MovingSourceSpec, test_videos: int = 24, epochs: int = 3,
                          batch_size: int = 64, lr: float = 1e-3, warmup_epochs: int = 1, dim: int = 64,
                          seed: int = 0, threshold: float | str = 0.5, progress: bool = False) -> dict:
    """Train both variants on ``train``, evaluate on a held-out set of the same classes.

    Returns ``{"fnac": metrics, "baseline": metrics, "checkpoints": {...}}``.
    """
    train_features, _ = make_moving_sources(train)
    test_features, test_boxes = make_moving_sources(replace(train, videos=test_videos, seed=train.seed + 1000))
    train_cache, test_cache = InMemoryCache(train_features), InMemoryCache(test_features)
    boxes = parse_boxes(test_boxes, "moving sources")
    results, checkpoints = {}, {}
    for name, switches in VARIANTS.items():
        config = SourceTrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, warmup_epochs=warmup_epochs,
                                   model_options={"dim": dim}, **switches)
        checkpoint = train_source_localizer(train_cache, None, Path(out_dir) / name, config, progress=progress).best_dir
        model, _ = load_source_localizer(checkpoint)
        results[name] = evaluate_localizer(model, test_cache, boxes, threshold=threshold).to_json()
        checkpoints[name] = str(checkpoint)
    return {**results, "checkpoints": checkpoints}
