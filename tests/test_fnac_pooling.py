"""FNAC's pooling of the audio-visual maps into batch logits: the authors' max and the softmax option."""
from __future__ import annotations

import pytest
import torch

from avepipe.models.fnac_losses import pooled_logits


def test_max_pooling_takes_the_strongest_position_over_tau():
    cross = torch.zeros(2, 2, 7, 7)
    cross[0, 1, 3, 4] = 0.9
    assert pooled_logits(cross, tau=0.1)[0, 1].item() == pytest.approx(9.0)


def test_softmax_pooling_is_the_max_on_a_peaked_map_and_the_mean_on_a_flat_one():
    peaked = torch.zeros(1, 1, 7, 7)
    peaked[0, 0, 2, 2] = 1.0
    assert pooled_logits(peaked, tau=0.03, pooling="softmax").item() == pytest.approx(1.0 / 0.03, rel=1e-6)
    flat = torch.full((1, 1, 7, 7), 0.4)
    assert pooled_logits(flat, tau=0.03, pooling="softmax").item() == pytest.approx(0.4 / 0.03)
    # By hand on two positions: weights softmax([0.1, 0.2] / 0.1) = [1, e] / (1 + e).
    pair = torch.tensor([0.1, 0.2]).reshape(1, 1, 1, 2)
    e = torch.e
    assert pooled_logits(pair, tau=0.1, pooling="softmax").item() == pytest.approx((0.1 + 0.2 * e) / (1 + e) / 0.1)


def test_softmax_pooling_sends_a_gradient_to_every_position_and_max_to_one():
    cross = torch.rand(1, 1, 7, 7, requires_grad=True)
    pooled_logits(cross, pooling="softmax").sum().backward()
    assert (cross.grad > 0).all()
    cross.grad = None
    pooled_logits(cross).sum().backward()
    assert int((cross.grad != 0).sum()) == 1
    with pytest.raises(ValueError, match="unknown pooling 'mean'"):
        pooled_logits(cross, pooling="mean")
