"""What every event model's tests share: a short fit on the synthetic stand-in, and a tiny labelled cache
for the train -> evaluate -> localize command-line test."""
from __future__ import annotations

from avepipe.extract.provenance import ExtractorConfig
from avepipe.models import build_model
from avepipe.training import Trainer, defaults_for, seed_everything
from tests._train_helpers import make_videos, tensor_splits, write_annotations, write_cache

CLASSES = ["a", "b", "c", "d", "background"]


def fit_synthetic(model: str, setting: str, tmp_path, options: dict | None = None, epochs: int = 5,
                  videos: tuple[int, int] = (24, 16), segments: int = 6, seed: int = 0,
                  **overrides):
    """(trained network, validation set, validation segment accuracy after the last epoch: none is
    picked on that set).

    ``videos`` = (training, validation) videos of ``segments`` seconds (weakly: a quarter of the
    training videos background-only, as AVE's extra videos), batches of 8; the model's authors'
    recipe otherwise, ``overrides`` changing single values. Short, for the suite's CPU budget.
    """
    train_set, val_set = tensor_splits(*videos, background_share=0.25 if setting == "weakly" else 0.0,
                                       distractors=0.4, segments=segments)
    seed_everything(seed)
    config = defaults_for(model, setting, model_options=options, epochs=epochs, seed=seed,
                          **{"batch_size": 8, **overrides})
    net = build_model(model, setting, num_classes=len(CLASSES) - 1, **config.model_options)
    trainer = Trainer(net, config, train_set, val_set, tmp_path, CLASSES, ExtractorConfig(), device="cpu",
                      progress=False)
    return net.eval(), val_set, trainer.fit().history[-1]["val_acc"]


def majority_share(dataset) -> float:
    """Accuracy of predicting background (the majority class) everywhere: what learning nothing scores."""
    return float((dataset.segment_labels == len(CLASSES) - 1).float().mean())


def write_labelled_cache(tmp_path, videos: int = 60):
    """A cache of ``videos`` generated videos (4 classes) and their annotations CSV: (root, cache, annotations)."""
    audio, visual, segments, _ = make_videos(videos, seed=0)
    ids = [f"vid{i:03d}" for i in range(videos)]
    cache = write_cache(tmp_path / "features.h5", ids, audio, visual)
    annotations = write_annotations(tmp_path / "labels.csv", ids, segments, [f"class {k}" for k in range(4)])
    return tmp_path, cache, annotations
