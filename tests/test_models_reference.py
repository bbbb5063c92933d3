"""Independent reference: the spec's equations written with torch functional ops on the raw
state-dict tensors (the way the authors' code computes them). Loading the same weights into our
networks must give the same outputs (this is the "imported authors' weights give their outputs" check)."""
from __future__ import annotations

import pytest
import torch

from avepipe import models
from tests._authors_reference import ref_fully, ref_weakly


def _random_weights(net, seed):
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(t.shape, generator=generator) * 0.1 + (1.0 if name.endswith("layer_norm.weight") else 0)
            for name, t in net.state_dict().items()}


def _net_and_inputs(setting: str, tau: float, weight_seed: int, input_seed: int, segments: int):
    """A network in eval mode with seeded random weights (also returned) and seeded inputs."""
    net = models.build_model("psp", setting, tau=tau)
    sd = _random_weights(net, weight_seed)
    net.load_state_dict(sd)
    net.eval()
    generator = torch.Generator().manual_seed(input_seed)
    audio = torch.randn(2, segments, 128, generator=generator)
    video = torch.rand(2, segments, 7, 7, 512, generator=generator)
    return net, sd, audio, video


@pytest.mark.parametrize("tau", [0.099, float("-inf")])
@pytest.mark.parametrize("segments", [10, 37])
def test_fully_matches_functional_reference(tau, segments):
    net, sd, audio, video = _net_and_inputs("fully", tau, 1, 2, segments)
    with torch.no_grad():
        out = net(audio, video)
        fusion, logits, similarity = ref_fully(audio, video, sd, tau)
    assert (out.fusion - fusion).abs().max() < 1e-5
    assert (out.logits - logits).abs().max() < 1e-5
    assert (out.similarity - similarity).abs().max() < 1e-5


@pytest.mark.parametrize("segments", [10, 37])
def test_weakly_matches_functional_reference(segments):
    net, sd, audio, video = _net_and_inputs("weakly", 0.095, 3, 4, segments)
    with torch.no_grad():
        out = net(audio, video)
        video_prob, score = ref_weakly(audio, video, sd, 0.095)
    assert (out.video_prob - video_prob).abs().max() < 1e-5
    assert (out.logits - score).abs().max() < 1e-5

