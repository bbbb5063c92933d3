"""`--annotations ave` / `--splits ave` select the official AVE files shipped with avepipe; `./ave` is a path."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from avepipe.cli import main
from avepipe.data.annotations import load_annotations
from avepipe.data.ave_metadata import AVE_ANNOTATIONS, AVE_METADATA_DIR
from avepipe.data.splits import load_official_splits, write_splits
from avepipe.extract.provenance import ExtractorConfig
from avepipe.models import build_model
from avepipe.models.checkpoint import save_checkpoint
from tests._train_helpers import write_cache

SEGMENTS = 10


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A checkpoint with the AVE classes, and a cache holding the first two official test videos and two
    official training videos (the test split of a user's own ./ave folder)."""
    root = tmp_path_factory.mktemp("metadata")
    official = load_annotations(AVE_ANNOTATIONS)
    splits = load_official_splits(AVE_METADATA_DIR, official)
    test_ids = splits["test"][:2]      # what `evaluate --limit 2` scores
    assert not any("#" in v for v in test_ids)
    own_ids = [v for v in splits["train"] if "#" not in v and official.events(v)][:2]
    ids = test_ids + own_ids
    rng = np.random.default_rng(0)
    config = ExtractorConfig(segments=SEGMENTS)
    write_cache(root / "cache.h5", ids, rng.normal(size=(4, SEGMENTS, 128)).astype(np.float32),
                rng.random((4, SEGMENTS, 7, 7, 512), dtype=np.float32), config)
    save_checkpoint(root / "ckpt", build_model("psp", "fully", num_classes=len(official.event_classes)),
                    official.classes, config)
    return root, official, splits, test_ids, own_ids


def _support(annotations, ids) -> dict[str, int]:
    """Segments per class (the report's class_support), counted from the annotations directly."""
    labels = np.concatenate([annotations.segment_labels(v, SEGMENTS) for v in ids])
    return dict(zip(annotations.classes, np.bincount(labels, minlength=len(annotations.classes)).tolist()))


def _evaluate(setup, *options) -> dict:
    root = setup[0]
    result = CliRunner().invoke(main, ["evaluate", str(root / "ckpt"), str(root / "cache.h5"), "--limit", "2",
                                       "--device", "cpu", "--json", *options])
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


def test_ave_names_the_shipped_annotations_and_splits(setup):
    _, official, _, test_ids, _ = setup
    report = _evaluate(setup, "--annotations", "ave", "--splits", "ave")
    assert report["videos"] == 2 and report["class_support"] == _support(official, test_ids)


def test_dot_slash_ave_is_a_users_annotations_file(setup, tmp_path, monkeypatch):
    _, official, _, test_ids, own_ids = setup
    # the user's own labels (every second a church bell) and, beside them, the user's own splits
    (tmp_path / "ave").write_text("".join(f"Church bell&{v}&good&0&10\n" for v in test_ids + own_ids))
    mine = load_annotations(tmp_path / "ave", classes=official.classes)
    write_splits(tmp_path, mine, {"train": own_ids[:1], "val": own_ids[1:], "test": test_ids})
    assert _support(mine, test_ids) != _support(official, test_ids)
    monkeypatch.chdir(tmp_path)
    report = _evaluate(setup, "--annotations", "./ave")
    assert report["class_support"] == _support(mine, test_ids)


def test_dot_slash_ave_is_a_users_split_folder(setup, tmp_path, monkeypatch):
    _, official, splits, test_ids, own_ids = setup
    (tmp_path / "ave").mkdir()
    train = [v for v in splits["train"] if v not in own_ids][:3]
    write_splits(tmp_path / "ave", official, {"train": train, "val": splits["val"][:2], "test": own_ids})
    monkeypatch.chdir(tmp_path)
    report = _evaluate(setup, "--annotations", "ave", "--splits", "./ave")
    assert report["class_support"] == _support(official, own_ids) != _support(official, test_ids)
