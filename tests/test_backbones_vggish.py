"""VGGish: pytorch_vggish.pth state-dict layout and TensorFlow's (H, W, C) flatten order."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from avepipe.errors import UserError
from avepipe.extract.vggish import VGGish, load_vggish_weights

# The keys and shapes of pytorch_vggish.pth, written out from the spec (not read from our module).
PYTORCH_VGGISH_SHAPES = {
    "features.0.weight": (64, 1, 3, 3), "features.0.bias": (64,),
    "features.3.weight": (128, 64, 3, 3), "features.3.bias": (128,),
    "features.6.weight": (256, 128, 3, 3), "features.6.bias": (256,),
    "features.8.weight": (256, 256, 3, 3), "features.8.bias": (256,),
    "features.11.weight": (512, 256, 3, 3), "features.11.bias": (512,),
    "features.13.weight": (512, 512, 3, 3), "features.13.bias": (512,),
    "embeddings.0.weight": (4096, 12288), "embeddings.0.bias": (4096,),
    "embeddings.2.weight": (4096, 4096), "embeddings.2.bias": (4096,),
    "embeddings.4.weight": (128, 4096), "embeddings.4.bias": (128,),
}


@pytest.fixture(scope="module")
def model() -> VGGish:
    torch.manual_seed(0)
    net = VGGish().eval()
    for layer in net.modules():  # He init keeps the random embeddings away from all-zero
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
    return net


def test_state_dict_layout_is_pytorch_vggish(model):
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == PYTORCH_VGGISH_SHAPES


def test_loads_a_pytorch_vggish_file(tmp_path, model):
    generator = torch.Generator().manual_seed(1)
    state = {k: torch.randn(shape, generator=generator) * 0.01 for k, shape in PYTORCH_VGGISH_SHAPES.items()}
    path = tmp_path / "pytorch_vggish.pth"
    torch.save(state, path)
    loaded = load_vggish_weights(VGGish(), path)
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, state[name]), name


def test_wrong_key_fails_with_its_name(tmp_path):
    state = {k: torch.zeros(1) for k in PYTORCH_VGGISH_SHAPES if k != "embeddings.4.bias"}
    state["embeddings.5.bias"] = torch.zeros(128)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(UserError) as caught:
        load_vggish_weights(VGGish(), path)
    message = str(caught.value)
    assert "embeddings.4.bias" in message and "embeddings.5.bias" in message and str(path) in message
    assert "\n" not in message


def test_wrong_shape_fails_with_its_name(tmp_path):
    state = {k: torch.zeros(shape) for k, shape in PYTORCH_VGGISH_SHAPES.items() if not k.startswith("embeddings.0")}
    state["embeddings.0.weight"] = torch.zeros(4096, 512)  # as if flattened after global pooling
    state["embeddings.0.bias"] = torch.zeros(4096)
    path = tmp_path / "shape.pth"
    torch.save(state, path)
    with pytest.raises(UserError, match=r"embeddings\.0\.weight has shape \(4096, 512\)"):
        load_vggish_weights(VGGish(), path)


def test_flatten_order_is_height_width_channel(model):
    examples = torch.randn(2, 1, 96, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        maps = model.features(examples).numpy()  # [2, 512, 6, 4]
        ours = model(examples).numpy()
    layers = [(model.embeddings[i].weight.detach().numpy(), model.embeddings[i].bias.detach().numpy()) for i in (0, 2, 4)]

    def fc_stack(flat):
        for weight, bias in layers:
            flat = np.maximum(flat @ weight.T + bias, 0.0)
        return flat

    hwc = fc_stack(maps.transpose(0, 2, 3, 1).reshape(2, -1))
    chw = fc_stack(maps.reshape(2, -1))
    assert ours.shape == (2, 128)
    np.testing.assert_allclose(ours, hwc, rtol=1e-4, atol=1e-5)
    assert np.abs(ours - chw).max() > 1e-3  # the test distinguishes the two orders
