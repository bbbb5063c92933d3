"""``--precision bf16`` training: autocast for forward and loss, fp32 weights and predictions, told where it is slow."""
from __future__ import annotations

import pytest
import torch

from avepipe.errors import UserError
from avepipe.event.precision import emulated_bf16_warning, require_bf16_gpu
from avepipe.event.training import TrainConfig, Trainer, defaults_for
from avepipe.extract.provenance import ExtractorConfig
from avepipe.models import build_model
from avepipe.run.seeding import seed_everything

from tests._train_helpers import tensor_splits

CLASSES = ["a", "b", "c", "d", "background"]
CPU = torch.device("cpu")


def _train(tmp_path, precision: str):
    """Two epochs of PSP on 16 generated videos; the dtypes AVGA's big projection produced in training."""
    train_set, val_set = tensor_splits(16, 8)
    seed_everything(0)
    config = defaults_for("psp", "fully", epochs=2, batch_size=8, seed=0, precision=precision)
    net = build_model("psp", "fully", num_classes=4)
    seen = set()
    net.attention.affine_video.register_forward_hook(
        lambda module, inputs, output: seen.add(output.dtype) if module.training else None)
    trainer = Trainer(net, config, train_set, val_set, tmp_path / precision, CLASSES, ExtractorConfig(),
                      device="cpu", progress=False)
    return trainer.fit(), net, seen


def test_bf16_trains_in_bf16_and_keeps_fp32_weights(tmp_path):
    fp32, _, fp32_dtypes = _train(tmp_path, "fp32")
    bf16, net, bf16_dtypes = _train(tmp_path, "bf16")
    assert fp32_dtypes == {torch.float32} and bf16_dtypes == {torch.bfloat16}
    assert {p.dtype for p in net.parameters()} == {torch.float32}
    # The same run in other arithmetic: close losses, not the same ones.
    fp32_loss, bf16_loss = fp32.history[0]["train_loss"], bf16.history[0]["train_loss"]
    assert fp32_loss != bf16_loss
    assert bf16_loss == pytest.approx(fp32_loss, rel=0.05)
    stored = (tmp_path / "bf16" / "last" / "config.json").read_text()
    assert '"precision": "bf16"' in stored


def test_unknown_precision_is_one_clear_error():
    with pytest.raises(UserError, match="unknown training precision 'fp16' \\(expected fp32 or bf16\\)"):
        TrainConfig(precision="fp16")
    assert TrainConfig.from_json(TrainConfig().to_json()).precision == "fp32"
    saved_before_the_option = {k: v for k, v in TrainConfig().to_json().items() if k != "precision"}
    assert TrainConfig.from_json(saved_before_the_option).precision == "fp32"


def test_bf16_on_a_cpu_that_would_emulate_it_is_warned_about():
    warning = emulated_bf16_warning("bf16", CPU, ["avx2", "avx512f"])
    assert warning == ("warning: this CPU has no native bf16 (amx_bf16 or avx512_bf16): --precision bf16 is "
                       "emulated here and trains slower than fp32")
    assert emulated_bf16_warning("bf16", CPU, ["avx512f", "avx512_bf16"]) is None
    assert emulated_bf16_warning("fp32", CPU, ["avx2"]) is None
    assert emulated_bf16_warning("bf16", torch.device("cuda"), ["avx2"]) is None


@pytest.mark.parametrize("capability, refused", [((7, 5), True), ((8, 0), False), ((9, 0), False)])
def test_bf16_on_a_gpu_without_it_is_refused(monkeypatch, capability, refused):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    if not refused:
        require_bf16_gpu(torch.device("cuda", 1))
        return
    with pytest.raises(UserError) as caught:
        require_bf16_gpu(torch.device("cuda", 1))
    assert str(caught.value) == ("--precision bf16: Tesla T4 has no bf16 arithmetic (compute capability < 8.0); "
                                 "train in fp32")
    require_bf16_gpu(CPU)
