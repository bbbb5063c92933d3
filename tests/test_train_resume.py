"""Resume exactness, published defaults and the no-pickle training state."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from avepipe.errors import UserError
from avepipe.training import STATE_JSON, STATE_TENSORS, Trainer, defaults_for, seed_everything
from avepipe.extract.provenance import ExtractorConfig
from avepipe.models import build_model

from tests._train_helpers import tensor_splits

CLASSES = ["a", "b", "c", "d", "background"]
# Exactness does not depend on size: 4-second videos, 2 batches of 2 per epoch keep the file cheap.
SEGMENTS = 4


class Interrupting(torch.utils.data.Dataset):
    """Raises after ``after`` batches, like a run killed in the middle of an epoch."""

    def __init__(self, inner, after: int):
        self.inner, self.after, self.calls = inner, after, 0

    def __len__(self):
        return len(self.inner)

    def __getitems__(self, indices):
        self.calls += 1
        if self.calls > self.after:
            raise KeyboardInterrupt("simulated kill")
        return self.inner.__getitems__(indices)


def _trainer(run_dir, train_set, val_set, epochs=3, model="psp", setting="fully"):
    seed_everything(5)
    config = defaults_for(model, setting, epochs=epochs, batch_size=2, seed=5, lr_milestones=(1,))
    net = build_model(model, setting, num_classes=4, **config.model_options)
    return Trainer(net, config, train_set, val_set, run_dir, CLASSES, ExtractorConfig(), device="cpu",
                   progress=False)


@pytest.mark.parametrize("model", ["psp", "cpsp"])
def test_interrupted_then_resumed_run_ends_with_identical_weights(tmp_path, model):
    train_set, val_set = tensor_splits(4, 2, seed=1, segments=SEGMENTS)
    straight = _trainer(tmp_path / "straight", train_set, val_set, model=model)
    straight.fit()

    # 2 batches per epoch: killed in the middle of epoch 2, after epoch 1 was saved.
    broken = _trainer(tmp_path / "broken", Interrupting(train_set, after=3), val_set, model=model)
    with pytest.raises(KeyboardInterrupt):
        broken.fit()
    assert json.loads((tmp_path / "broken" / "last" / STATE_JSON).read_text())["epoch"] == 1

    torch.manual_seed(1234)    # a new process: different global RNG until resume restores it
    resumed = _trainer(tmp_path / "broken", train_set, val_set, model=model)
    resumed.resume()
    assert resumed.epoch == 1
    resumed.fit()

    for (name, a), (_, b) in zip(straight.net.state_dict().items(), resumed.net.state_dict().items()):
        assert torch.equal(a, b), name
    assert [r["train_loss"] for r in straight.history] == [r["train_loss"] for r in resumed.history]
    gamma = 0.5 if model == "cpsp" else 0.8
    assert [r["lr"] for r in resumed.history] == pytest.approx([1e-3, 1e-3 * gamma, 1e-3 * gamma])

def test_training_state_is_safetensors_and_json(tmp_path):
    train_set, val_set = tensor_splits(2, 2, seed=2, segments=SEGMENTS)
    trainer = _trainer(tmp_path, train_set, val_set, epochs=1)
    trainer.fit()
    tensors = load_file(str(tmp_path / "last" / STATE_TENSORS))
    assert "rng.torch" in tensors and any(k.startswith("optimizer.") and k.endswith("exp_avg_sq") for k in tensors)
    state = json.loads((tmp_path / "last" / STATE_JSON).read_text())
    assert state["epoch"] == 1 and state["train_config"]["batch_size"] == 2
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3)
    # nothing in the run directory is a pickle
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert not path.read_bytes().startswith(b"\x80"), path


def test_published_defaults_and_overrides():
    fully = defaults_for("psp", "fully")
    assert (fully.lr, fully.batch_size, fully.epochs, fully.clip_grad_norm) == (1e-3, 128, 300, None)
    assert [fully.lr_at(e) for e in (1, 60, 61, 120, 121)] == pytest.approx([1e-3, 1e-3, 8e-4, 8e-4, 6.4e-4])
    assert defaults_for("psp", "weakly", model_options={"tau": 0.095}).model_options == {"tau": 0.095}
    cpsp = defaults_for("cpsp", "fully")
    assert (cpsp.batch_size, cpsp.epochs, cpsp.clip_grad_norm) == (64, 45, 0.1)
    assert [cpsp.lr_at(e) for e in (10, 11, 21, 31)] == pytest.approx([1e-3, 5e-4, 2.5e-4, 1.25e-4])
    assert defaults_for("psp", "fully", lr=0.01, epochs=None).lr == 0.01
    with pytest.raises(UserError, match="no 'psp' model for the 'self-supervised' setting"):
        defaults_for("psp", "self-supervised")
