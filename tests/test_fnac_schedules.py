"""Named training schedules of the sound-source localiser, and the batch-scaled FNS/TNE weights of small-data."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from avepipe.models.fnac_losses import fnac_loss
from avepipe.source.training import schedule_config


def test_authors_schedule_keeps_their_weights_at_any_batch():
    for batch in (None, 32, 512):
        options = schedule_config("authors", batch_size=batch)
        assert "fns_weight" not in options.model_options and "tne_weight" not in options.model_options
    assert schedule_config("authors").batch_size == 128 and schedule_config("authors").lr == 1e-4


def test_small_data_weights_follow_the_batch_size():
    assert schedule_config("small-data").model_options["fns_weight"] == 25.0
    for batch, weight in ((16, 12.5), (64, 50.0), (128, 100.0)):
        model = schedule_config("small-data", batch_size=batch).model_options
        assert model["fns_weight"] == model["tne_weight"] == weight
    options = schedule_config("small-data", epochs=5, lr=None)
    assert options.epochs == 5 and options.lr == 1e-3 and options.batch_size == 32


def weighted_fns(batch: int, weight: float) -> float:
    generator = torch.Generator().manual_seed(batch)
    audio = F.normalize(torch.randn(batch, 16, generator=generator), dim=1)
    visual = F.normalize(torch.randn(batch, 7, 7, 16, generator=generator), dim=-1)
    parts = fnac_loss(audio, visual, tau=0.1, use_tne=False)
    return weight * float(parts["fns_audio"] + parts["fns_visual"])


def test_scaled_weights_keep_the_fns_term_the_same_size_across_batch_sizes():
    # The L1 terms are means over B x B softmax entries, so they shrink as 1/B: a fixed weight makes them
    # four times heavier at 32 than at the authors' 128; the scaled one keeps them alike.
    fixed = weighted_fns(32, 100.0) / weighted_fns(128, 100.0)
    scaled = weighted_fns(32, schedule_config("small-data", batch_size=32).model_options["fns_weight"]) \
        / weighted_fns(128, schedule_config("small-data", batch_size=128).model_options["fns_weight"])
    assert 3.0 < fixed < 5.0
    assert 0.75 < scaled < 1.25
