"""PSP (CVPR 2021) and CPSP (TPAMI 2023), fully and weakly supervised: networks, recipes, import.

Attribute names equal the authors' (``fa``, ``fv``, ``attention``, ``lstm_a_v``,
``psp``, ``L1``, ``L2``, ``linear_v``, ``W3``) so their state-dicts load directly.
Every network works for any number of segments T.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avepipe.models import losses
from avepipe.models.avga import AVGA
from avepipe.models.base import EventNetwork, xavier
from avepipe.models.event_category import EventCategoryRule, weak_video_prediction
from avepipe.models.lstm import AudioVisualLSTM
from avepipe.models.outputs import ModelOutput
from avepipe.models.psp import PSP
from avepipe.models.registry import AUTHORS, SMALL_DATA, ModelFamily, ModelOption, Recipe

TAU_FULLY = 0.099
TAU_WEAKLY = 0.095


def _two_linear(in_dim: int, mid_dim: int, out_dim: int) -> nn.Sequential:
    """Linear -> Linear, no bias, no activation (the authors' ``fa``/``fv``)."""
    stack = nn.Sequential(nn.Linear(in_dim, mid_dim, bias=False), nn.Linear(mid_dim, out_dim, bias=False))
    xavier(*stack)
    return stack


class _PSPNetBase(EventNetwork):
    """PSP-family networks: tau (the PSP pruning threshold) is their build option."""

    model_name = "psp"

    @property
    def tau(self) -> float:
        return self.psp.tau

    @tau.setter
    def tau(self, value: float) -> None:
        self.psp.tau = value

    def options(self) -> dict:
        return {"tau": self.tau}


class _FullyEncoder(_PSPNetBase):
    """fa -> AVGA -> fv -> Bi-LSTMs -> PSP (with v_fc/a_fc and re-normalisation)."""

    def __init__(self, tau: float, num_classes: int):
        super().__init__(num_classes)
        self.fa = _two_linear(128, 256, 128)
        self.attention = AVGA(audio_dim=128)
        self.fv = _two_linear(512, 256, 128)
        self.lstm_a_v = AudioVisualLSTM(128, 128, 128)
        self.psp = PSP(256, tau=tau, fully=True)

    def encode(self, audio: Tensor, visual: Tensor) -> ModelOutput:
        audio_emb = self.fa(audio)
        attended, attention = self.attention(audio_emb, visual)
        a_l, v_l = self.lstm_a_v(audio_emb, self.fv(attended))
        fusion, v_f, a_f, gamma_va, gamma_av = self.psp(a_l, v_l)
        return ModelOutput(similarity=(F.normalize(v_f, dim=-1) * F.normalize(a_f, dim=-1)).sum(dim=-1), fusion=fusion,
                           audio_feat=a_f, visual_feat=v_f, gamma_va=gamma_va, gamma_av=gamma_av,
                           attention=attention)


class FullyPSPNet(_FullyEncoder):
    """Fully supervised PSP: per-segment 29-way classifier + AV-pair similarity (AVPS)."""

    def __init__(self, tau: float = TAU_FULLY, num_classes: int = 28, avps_weight: float = 100.0):
        super().__init__(tau, num_classes)
        self.L1 = nn.Linear(256, 64, bias=False)
        self.L2 = nn.Linear(64, num_classes + 1, bias=False)
        xavier(self.L1, self.L2)
        self.avps_weight = avps_weight

    def forward(self, audio: Tensor, visual: Tensor) -> ModelOutput:
        out = self.encode(audio, visual)
        out.logits = self.L2(F.relu(self.L1(out.fusion)))
        return out

    def compute_loss(self, out: ModelOutput, segment_labels: Tensor, video_labels: Tensor) -> dict[str, Tensor]:
        ce = losses.segment_cross_entropy(out.logits, segment_labels)
        avps = losses.avps_loss(out.similarity, segment_labels != self.background)
        return {"loss": ce + self.avps_weight * avps, "ce": ce, "avps": avps}


class WeaklyPSPNet(_PSPNetBase):
    """Weakly supervised PSP (authors' code): raw audio into AVGA, linear_v, no v_fc/a_fc, W3 weighting."""

    setting = "weakly"

    def __init__(self, tau: float = TAU_WEAKLY, num_classes: int = 28):
        super().__init__(num_classes)
        self.attention = AVGA(audio_dim=128)
        self.linear_v = nn.Linear(512, 128)
        self.lstm_a_v = AudioVisualLSTM(128, 128, 128)
        self.psp = PSP(256, tau=tau, fully=False)
        self.L1 = nn.Linear(256, 64, bias=False)
        self.L2 = nn.Linear(64, num_classes + 1, bias=False)
        self.W3 = nn.Linear(num_classes + 1, 1, bias=False)
        xavier(self.L1, self.L2)        # linear_v and W3 keep PyTorch's defaults (PSP weakly_model.py:200-208)

    def forward(self, audio: Tensor, visual: Tensor) -> ModelOutput:
        attended, attention = self.attention(audio, visual)
        a_l, v_l = self.lstm_a_v(audio, self.linear_v(attended))
        fusion, v_f, a_f, gamma_va, gamma_av = self.psp(a_l, v_l)
        score = self.L2(F.relu(self.L1(fusion)))
        score = score * torch.sigmoid(F.relu(self.W3(score)))
        return ModelOutput(logits=score, video_prob=F.softmax(score.mean(dim=1), dim=-1), fusion=fusion,
                           audio_feat=a_f, visual_feat=v_f, gamma_va=gamma_va, gamma_av=gamma_av,
                           attention=attention)

    def compute_loss(self, out: ModelOutput, segment_labels: Tensor, video_labels: Tensor) -> dict[str, Tensor]:
        """BCE against the spec's video label, mean_t one-hot(segment labels); ``video_labels`` is not used
        because the released video-level labels never set the background column."""
        target = losses.weak_video_target(segment_labels, self.num_classes + 1)
        bce = losses.weak_bce_loss(out.video_prob, target)
        return {"loss": bce, "bce": bce}


CPSP_LOSSES = ("released", "corrected")


class EventCategoryHeads(EventCategoryRule, _FullyEncoder):
    """The fully supervised encoder with the CPSP framework's event/background head and video category head.

    ``authors_init`` initialises ``fa``, ``fv`` and both heads with PyTorch's defaults, as the CPSP
    authors' ``fully_psp_net`` does; otherwise the heads are Xavier-initialised.
    """

    def __init__(self, tau: float, num_classes: int, authors_init: bool):
        super().__init__(tau, num_classes)
        self.event_head = nn.Linear(256, 1)
        self.category_head = nn.Linear(256, num_classes)
        if authors_init:
            for layer in (*self.fa, *self.fv):
                layer.reset_parameters()
        else:
            xavier(self.event_head, self.category_head)

    def forward(self, audio: Tensor, visual: Tensor) -> ModelOutput:
        out = self.encode(audio, visual)
        out.event_logits = self.event_head(out.fusion).squeeze(-1)
        out.category_logits = self.category_head(out.fusion.mean(dim=1))
        return out


class _CPSPHeads(EventCategoryHeads):
    """CPSP's heads with PSA_V.

    ``loss`` picks the training objective (docs/cpsp.md): ``released`` computes what the authors'
    released code computes and initialises ``fa``, ``fv`` and both heads with PyTorch's defaults as
    that code does; ``corrected`` computes the intended terms, with Xavier-initialised layers. The
    forward pass and the decision rule do not depend on it.
    """

    model_name = "cpsp"

    def __init__(self, tau: float, num_classes: int, loss: str, psa_video_weight: float, margin: float,
                 negatives: int):
        if loss not in CPSP_LOSSES:
            raise ValueError(f"unknown CPSP loss {loss!r} (expected one of {', '.join(CPSP_LOSSES)})")
        super().__init__(tau, num_classes, authors_init=loss == "released")
        self.loss = loss
        self.psa_video_weight = psa_video_weight
        self.margin = margin
        self.negatives = negatives

    def options(self) -> dict:
        return {**super().options(), "cpsp_loss": self.loss}

    def psa_video(self, fusion: Tensor, categories: Tensor) -> Tensor:
        """PSA_V as this variant computes it, with this network's margin and number of negatives."""
        loss = losses.released_psa_video_loss if self.loss == "released" else losses.psa_video_loss
        return loss(fusion, categories, self.margin, self.negatives)


class CPSPNet(_CPSPHeads):
    """Fully supervised CPSP: event BCE + category CE + AVPS + PSA_S + PSA_V (margin 0.2, 3 negatives)."""

    def __init__(self, tau: float = TAU_FULLY, num_classes: int = 28, loss: str = "released",
                 avps_weight: float = 100.0, psa_segment_weight: float = 0.01, psa_video_weight: float = 1.0,
                 margin: float = 0.2, negatives: int = 3):
        super().__init__(tau, num_classes, loss, psa_video_weight, margin, negatives)
        self.avps_weight = avps_weight
        self.psa_segment_weight = psa_segment_weight

    def compute_loss(self, out: ModelOutput, segment_labels: Tensor, video_labels: Tensor) -> dict[str, Tensor]:
        is_event = segment_labels != self.background
        event = F.binary_cross_entropy_with_logits(out.event_logits, is_event.to(out.event_logits.dtype))
        if self.loss == "released":
            categories = losses.released_categories(segment_labels, self.background)
            category = F.cross_entropy(out.category_logits, categories)
            avps = losses.avps_loss(out.similarity, is_event, count_eps=1e-6)
            psa_s = losses.released_psa_segment_loss(out.fusion, is_event)
        else:
            categories = losses.video_categories(video_labels[:, : self.num_classes])
            has_event = categories >= 0
            category = (F.cross_entropy(out.category_logits[has_event], categories[has_event])
                        if has_event.any() else out.category_logits.sum() * 0.0)
            avps = losses.avps_loss(out.similarity, is_event)
            psa_s = losses.psa_segment_loss(out.fusion, is_event)
        psa_v = self.psa_video(out.fusion, categories)
        total = (event + category + self.avps_weight * avps + self.psa_segment_weight * psa_s
                 + self.psa_video_weight * psa_v)
        return {"loss": total, "event": event, "category": category, "avps": avps, "psa_s": psa_s, "psa_v": psa_v}


class WeaklyCPSPNet(_CPSPHeads):
    """Weakly supervised CPSP (the authors' ``weakly_psp_net``, flag ``cpsp``): the same network as CPSPNet,
    trained from video labels only.

    The video prediction max-pools sigmoid(event logit_t) * category logits over t and takes a softmax;
    the loss is a multi-label soft margin loss between that prediction and the video's event classes,
    plus PSA_V with margin 0.6 and 4 negatives. Segments are predicted as in CPSPNet.
    """

    setting = "weakly"

    def __init__(self, tau: float = TAU_WEAKLY, num_classes: int = 28, loss: str = "released",
                 psa_video_weight: float = 1.0, margin: float = 0.6, negatives: int = 4):
        super().__init__(tau, num_classes, loss, psa_video_weight, margin, negatives)

    def forward(self, audio: Tensor, visual: Tensor) -> ModelOutput:
        out = super().forward(audio, visual)
        out.video_prob = weak_video_prediction(out.event_logits, out.category_logits)
        return out

    def compute_loss(self, out: ModelOutput, segment_labels: Tensor, video_labels: Tensor) -> dict[str, Tensor]:
        """``segment_labels`` are not used. The target is the video label without its background column
        (as the authors' loaders give it), applied to the softmax probabilities as their code does."""
        target = video_labels[:, : self.num_classes].to(out.video_prob.dtype)
        video = F.multilabel_soft_margin_loss(out.video_prob, target)
        # released: the argmax of the label, so a video without an event is class 0; corrected: left out
        categories = target.argmax(dim=1) if self.loss == "released" else losses.video_categories(target)
        psa_v = self.psa_video(out.fusion, categories)
        return {"loss": video + self.psa_video_weight * psa_v, "video": video, "psa_v": psa_v}


# -- the registry entries ---------------------------------------------------------------------
def tau_or_default(setting: str, tau: float | None) -> float:
    return float(tau) if tau is not None else (TAU_WEAKLY if setting == "weakly" else TAU_FULLY)


def build_psp(setting: str, num_classes: int = 28, tau: float | None = None) -> _PSPNetBase:
    network = WeaklyPSPNet if setting == "weakly" else FullyPSPNet
    return network(tau=tau_or_default(setting, tau), num_classes=num_classes)


def build_cpsp(setting: str, num_classes: int = 28, tau: float | None = None, cpsp_loss: str | None = None) -> _CPSPHeads:
    network = WeaklyCPSPNet if setting == "weakly" else CPSPNet
    return network(tau=tau_or_default(setting, tau), num_classes=num_classes, loss=cpsp_loss or "released")


# Our name for each key of the CPSP authors' state-dict that differs; the rest are one to one.
CPSP_AUTHORS_KEYS = {"event_classifier.0.": "event_head.", "category_classifier.0.": "category_head."}


def import_psp_state(state: dict[str, Tensor], setting: str) -> dict[str, Tensor]:
    """The PSP authors' keys are ours; a CPSP file given as PSP is refused by name."""
    if "event_classifier.0.weight" in state and "fa.0.weight" in state:
        raise ValueError("holds a CPSP network (it has 'event_classifier.0.weight'); import it as CPSP (--model cpsp)")
    return state


def import_cpsp_state(state: dict[str, Tensor], setting: str) -> dict[str, Tensor]:
    """The CPSP authors' heads are one-layer Sequentials (``.0.``); their unused ``linear_v``,
    ``v_classify``, ``a_classify``, ``L1``, ``L2`` are left for the importer to ignore."""
    renamed = {}
    for key, value in state.items():
        prefix = next((p for p in CPSP_AUTHORS_KEYS if key.startswith(p)), None)
        renamed[CPSP_AUTHORS_KEYS[prefix] + key[len(prefix):] if prefix else key] = value
    return renamed


TAU = ModelOption("tau", float, "PSP pruning threshold (fully: 0.099, weakly: 0.095). '-inf' keeps all connections; "
                                "'inf' disables propagation ('w/o PSP').")
CPSP_LOSS = ModelOption("cpsp_loss", str, "released (default) trains with the loss and initialisation of the "
                                          "authors' code, which gave the published numbers; corrected computes the "
                                          "intended PSA_S, category and PSA_V terms (weakly: PSA_V) (docs/cpsp.md).",
                        choices=CPSP_LOSSES)

# Spec (models.md) and PSP_CVPR_2021 fully_supervised_main.py: Adam 1e-3, 300 epochs, batch 128,
# StepLR-like decay x0.8 after epochs 60 and 120. Weakly PSP uses the same optimiser and schedule.
PSP_AUTHORS = Recipe(epochs=300, batch_size=128, lr=1e-3, lr_milestones=(60, 120), lr_gamma=0.8,
                     source="PSP_CVPR_2021 fully_supervised_main.py (Adam, MultiStepLR [60,120] x0.8)")
# The CPSP repository trains every model of its framework (CPSP, SSPSP, ...) with these.
CPSP_FRAMEWORK = {
    "fully": Recipe(epochs=45, batch_size=64, lr=1e-3, lr_milestones=(10, 20, 30), lr_gamma=0.5,
                    clip_grad_norm=0.1, source="CPSP run_fully_supv.sh, fully_supv_main.py"),
    "weakly": Recipe(epochs=45, batch_size=64, lr=1e-3, lr_milestones=(5, 20, 40), lr_gamma=0.5,
                     clip_grad_norm=0.1, source="CPSP run_weakly_supv.sh, weakly_supv_main.py")}
# avepipe's own recipe for a few dozen training videos (issue #26, docs/baselines.md): many more
# optimiser steps than the authors' batches of 64-128 make on such a split, and a decay inside the run.
PSP_SMALL_DATA = Recipe(epochs=24, batch_size=4, lr=1e-3, lr_milestones=(16,), lr_gamma=0.3,
                        source="measured on 40 synthetic training videos, random backbones, 5 seeds: held-out "
                               "accuracy 0.83 +- 0.07 beside linear probe 0.73, majority 0.60; docs/baselines.md")
CPSP_SMALL_DATA = Recipe(epochs=24, batch_size=4, lr=1e-3, lr_milestones=(16,), lr_gamma=0.3,
                         clip_grad_norm=0.1,
                         source="measured on 40 synthetic training videos, random backbones, 5 seeds: held-out "
                                "accuracy 0.89 +- 0.01 beside linear probe 0.73, majority 0.60; docs/baselines.md")
FAMILIES = (
    ModelFamily(
        name="psp", summary="Positive Sample Propagation (Zhou et al., CVPR 2021)", build=build_psp,
        recipes={AUTHORS: {"fully": PSP_AUTHORS, "weakly": PSP_AUTHORS}, SMALL_DATA: {"fully": PSP_SMALL_DATA}},
        options=(TAU,), import_state=import_psp_state, published={"fully": 77.8, "weakly": 73.5}),  # PSP Table 4
    ModelFamily(
        name="cpsp", summary="Contrastive PSP (Zhou et al., TPAMI 2023)", build=build_cpsp,
        recipes={AUTHORS: CPSP_FRAMEWORK, SMALL_DATA: {"fully": CPSP_SMALL_DATA}},
        options=(TAU, CPSP_LOSS), import_state=import_cpsp_state, import_options={"cpsp_loss": "released"}),
)
