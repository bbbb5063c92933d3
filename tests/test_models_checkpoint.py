"""Checkpoint save/load (no pickle), import of the authors' state-dicts, import-checkpoint CLI."""
from __future__ import annotations

import json
import pathlib
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from avepipe import models
from avepipe.commands.import_checkpoint import ave_classes, import_checkpoint
from avepipe.errors import UserError
from avepipe.training import TrainConfig
from avepipe.extract.provenance import AVE_RELEASED, ExtractorConfig
from avepipe.models.checkpoint import import_authors_state_dict, load_checkpoint, save_checkpoint
from tests._paths import AVE_DIR

ANNOTATIONS = AVE_DIR / "Annotations.txt"
AVE_CLASSES = ave_classes()

_LSTM = {f"{kind}_{part}_l0{suffix}": (512, 128) if kind == "weight" else (512,)
         for kind in ("weight", "bias") for part in ("ih", "hh") for suffix in ("", "_reverse")}
_COMMON = {
    "attention.affine_audio.weight": (512, 128), "attention.affine_audio.bias": (512,),
    "attention.affine_video.weight": (512, 512), "attention.affine_video.bias": (512,),
    "attention.affine_v.weight": (49, 512), "attention.affine_g.weight": (49, 512),
    "attention.affine_h.weight": (1, 49),
    **{f"lstm_a_v.lstm_{m}.{k}": s for m in ("audio", "video") for k, s in _LSTM.items()},
    "psp.v_L1.weight": (256, 256), "psp.v_L2.weight": (256, 256),
    "psp.a_L1.weight": (256, 256), "psp.a_L2.weight": (256, 256),
    "psp.layer_norm.weight": (256,), "psp.layer_norm.bias": (256,),
    "L1.weight": (64, 256), "L2.weight": (29, 64),
}
# The spec's key list ("Importing the authors' released checkpoints"), written out independently.
SPEC_KEYS = {
    "fully": {**_COMMON, "fa.0.weight": (256, 128), "fa.1.weight": (128, 256), "fv.0.weight": (256, 512),
              "fv.1.weight": (128, 256), "psp.v_fc.weight": (256, 256), "psp.a_fc.weight": (256, 256)},
    "weakly": {**_COMMON, "linear_v.weight": (128, 512), "linear_v.bias": (128,), "W3.weight": (1, 29)},
}
# Layers the authors' files carry but never use.
UNUSED = {"fully": {"linear_v.weight": (128, 512), "L3.weight": (64, 256), "L4.bias": (2,),
                    "v_classify.L1.weight": (64, 256)},
          "weakly": {"temperature": (1, 29), "W1.weight": (1, 256), "W2.weight": (1, 64)}}


def _authors_state(setting: str, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    shapes = {**SPEC_KEYS[setting], **UNUSED[setting]}
    return {key: torch.randn(shape, generator=generator) * 0.1 for key, shape in shapes.items()}


def _inputs(segments: int = 10):
    generator = torch.Generator().manual_seed(7)
    return torch.randn(2, segments, 128, generator=generator), torch.rand(2, segments, 7, 7, 512, generator=generator)


class _Payload:
    """Unpickling this creates a marker file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.mark.parametrize("setting", ["fully", "weakly"])
def test_parameter_names_and_shapes_equal_the_authors(setting):
    state = models.build_model("psp", setting).state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == SPEC_KEYS[setting]


@pytest.mark.parametrize("setting", ["fully", "weakly"])
def test_import_loads_spec_keys_and_ignores_unused(tmp_path, setting):
    state = _authors_state(setting)
    path = tmp_path / "released.pth"
    torch.save(state, path)
    model = import_authors_state_dict(path, setting)
    assert not model.training
    assert model.tau == (0.099 if setting == "fully" else 0.095)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_import_accepts_wrapped_and_dataparallel_files(tmp_path):
    state = _authors_state("fully")
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 299}, path)
    model = import_authors_state_dict(path, "fully")
    assert torch.equal(model.state_dict()["psp.v_fc.weight"], state["psp.v_fc.weight"])


def test_import_missing_key_is_named(tmp_path):
    state = _authors_state("fully")
    del state["psp.a_fc.weight"]
    torch.save(state, tmp_path / "m.pth")
    with pytest.raises(UserError, match=r"missing key 'psp\.a_fc\.weight'"):
        import_authors_state_dict(tmp_path / "m.pth", "fully")


def test_import_misshaped_key_is_named_with_both_shapes(tmp_path):
    state = _authors_state("weakly")
    state["W3.weight"] = torch.zeros(1, 28)
    torch.save(state, tmp_path / "s.pth")
    with pytest.raises(UserError, match=r"'W3\.weight' has shape \(1, 28\), expected \(1, 29\)"):
        import_authors_state_dict(tmp_path / "s.pth", "weakly")


def test_import_never_executes_pickled_code(tmp_path):
    marker = tmp_path / "executed"
    torch.save({"state_dict": _Payload(marker)}, tmp_path / "evil.pth")
    with pytest.raises(UserError, match="evil.pth"):
        import_authors_state_dict(tmp_path / "evil.pth", "fully")
    assert not marker.exists()


@pytest.mark.parametrize("model_name,setting", [("psp", "fully"), ("psp", "weakly"), ("cpsp", "fully")])
def test_save_load_round_trip_gives_identical_outputs(tmp_path, model_name, setting):
    torch.manual_seed(0)
    net = models.build_model(model_name, setting, tau=0.05).eval()
    extractor = ExtractorConfig(visual_weights="random:3", audio_weights="random:3", segments=10)
    classes = [f"class {i}" for i in range(28)] + ["background"]
    save_checkpoint(tmp_path / "ckpt", net, classes, extractor, extra={"epoch": 4})
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["class_names"] == classes
    assert ExtractorConfig.from_json(json.dumps(config["extractor"])) == extractor
    loss = {"cpsp_loss": "released"} if model_name == "cpsp" else {}
    assert config["model"] == {"model": model_name, "setting": setting, "tau": 0.05, "num_classes": 28, **loss}
    loaded, info = load_checkpoint(tmp_path / "ckpt")
    assert info.class_names == classes and info.extractor == extractor and info.extra == {"epoch": 4}
    audio, visual = _inputs(37)
    with torch.no_grad():
        a, b = net(audio, visual), loaded(audio, visual)
    for name in ("logits", "event_logits", "category_logits", "video_prob", "fusion", "gamma_va"):
        if getattr(a, name) is not None:
            assert torch.equal(getattr(a, name), getattr(b, name)), name


def _strict_json(text: str):
    """json.loads refusing Infinity/NaN, as JSON parsers outside Python (jq, JavaScript) do."""
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("tau", [float("-inf"), float("inf")])
def test_infinite_tau_round_trips_through_strict_json(tmp_path, tau):
    net = models.build_model("psp", "fully", tau=tau)
    save_checkpoint(tmp_path, net, AVE_CLASSES + ["background"], AVE_RELEASED,
                    extra={"train_config": TrainConfig(model_options={"tau": tau}).to_json()})
    config = _strict_json((tmp_path / "config.json").read_text())
    assert config["model"]["tau"] == str(tau) and config["extra"]["train_config"]["tau"] == str(tau)
    assert load_checkpoint(tmp_path)[0].tau == tau
    assert TrainConfig.from_json(config["extra"]["train_config"]).model_options["tau"] == tau
    assert TrainConfig.from_json(TrainConfig(model_options={"tau": 0.099}).to_json()).model_options["tau"] == 0.099


def test_load_rejects_pickle_payload_without_running_it(tmp_path):
    net = models.build_model("psp", "fully")
    save_checkpoint(tmp_path, net, AVE_CLASSES + ["background"], AVE_RELEASED)
    marker = tmp_path / "executed"
    torch.save({"weights": _Payload(marker)}, tmp_path / "model.safetensors")
    with pytest.raises(UserError, match="model.safetensors"):
        load_checkpoint(tmp_path)
    assert not marker.exists()


def test_load_names_missing_config(tmp_path):
    with pytest.raises(UserError, match="config.json"):
        load_checkpoint(tmp_path)


def test_ave_classes_are_annotations_first_appearance_order():
    order: list[str] = []
    for line in ANNOTATIONS.read_text(encoding="utf-8").splitlines():
        category = line.split("&")[0]
        if line.strip() and category not in order:
            order.append(category)
    assert AVE_CLASSES == order and len(order) == 28


def test_import_checkpoint_cli_writes_a_loadable_checkpoint(tmp_path):
    state = _authors_state("fully", seed=5)
    torch.save(state, tmp_path / "psp_fully.pth")
    result = CliRunner().invoke(import_checkpoint, [str(tmp_path / "psp_fully.pth"), "--setting", "fully",
                                                    "-o", str(tmp_path / "ckpt")])
    assert result.exit_code == 0, result.output
    model, info = load_checkpoint(tmp_path / "ckpt")
    assert info.extractor == AVE_RELEASED
    assert info.class_names == AVE_CLASSES + ["background"]
    assert torch.equal(model.state_dict()["fa.0.weight"], state["fa.0.weight"])


def test_import_checkpoint_cli_custom_classes_and_error(tmp_path):
    state = _authors_state("weakly")
    torch.save(state, tmp_path / "w.pth")
    (tmp_path / "classes.txt").write_text("\n".join(f"c{i}" for i in range(28)) + "\n")
    runner = CliRunner()
    ok = runner.invoke(import_checkpoint, [str(tmp_path / "w.pth"), "--setting", "weakly", "-o",
                                           str(tmp_path / "ck"), "--classes", str(tmp_path / "classes.txt")])
    assert ok.exit_code == 0, ok.output
    assert load_checkpoint(tmp_path / "ck")[1].class_names[-2:] == ["c27", "background"]
    bad = runner.invoke(import_checkpoint, [str(tmp_path / "w.pth"), "--setting", "fully", "-o",
                                            str(tmp_path / "ck2")])
    assert bad.exit_code == 2
    assert "error:" in bad.output and "fa.0.weight" in bad.output and "Traceback" not in bad.output
