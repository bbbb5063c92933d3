"""CACE-Net (He et al., ACM MM 2024), fully supervised: network, losses, recipe and checkpoint import.

As the authors' ``supv_main_model`` with ``--guide Co-Guide --psai 0.3 --contrastive --Lambda 0.6``
(CACE/model/main_model.py:426-549, the command of their README.md:72): co-guidance attention, Bi-LSTMs,
CMRAN-style encoders and cross-modal decoders, gated by each other's self-attended stream, two
interaction blocks, then an event-vs-background logit per segment and one category per video.
Attribute names equal the authors' so their state-dicts load directly (docs/models.md#cace-net).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avepipe.models import losses
from avepipe.models.base import EventNetwork
from avepipe.models.cace_attention import CoGuidedAttention
from avepipe.models.cace_layers import CrossModalDecoder, TemporalEncoder
from avepipe.models.cmbs import AudioVisualRNN
from avepipe.models.cmran import AudioVideoInter
from avepipe.models.cace_loss import background_event_contrastive_loss
from avepipe.models.event_category import EventCategoryRule
from avepipe.models.outputs import ModelOutput
from avepipe.models.registry import AUTHORS, ModelFamily, ModelOption, Recipe

CONTRASTIVE_FROM = 26   # 1-based; the authors' 0-based `epoch >= n_epoch / 8` with 200 epochs


class _LocalizeHead(nn.Module):
    """Event logit per segment, video category logits, and the projection ``encoder_q`` shared by the
    contrastive term and (once it is switched on) the event logit."""

    def __init__(self, d_model: int, num_classes: int):
        super().__init__()
        self.classifier = nn.Linear(d_model, 1)
        self.encoder_q = nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU())
        self.event_classifier = nn.Linear(d_model, num_classes)


def _top4_mean(scores: Tensor) -> Tensor:
    """Mean of the 4 largest per-segment scores [B,T,C] over T (all of them when T < 4) -> [B,C]."""
    return scores.topk(min(4, scores.shape[1]), dim=1).values.mean(dim=1)


class CACENet(EventCategoryRule, EventNetwork):
    """Fully supervised CACE-Net.

    Loss (the authors' supv_main.py:195-245): event BCE + category CE + BCE-with-logits of the
    audio-visual gate (already a probability: the released code squashes it twice) + CE of the
    top-4 class activation score + ``contrastive_weight`` x the background-event contrastive term
    (temperature 0.01), which, like the ``Lambda`` enhancement of the event logit, is on from epoch
    ``contrastive_from``. Whether it is on is a buffer, so a checkpoint predicts as it was selected.
    """

    model_name = "cace"

    def __init__(self, num_classes: int = 28, psai: float = 0.3, beta: float = 0.4, alpha: float = 0.1,
                 gamma: float = 0.3, lambda_: float = 0.6, temperature: float = 0.01, noise: float = 0.1,
                 contrastive_weight: float = 1.0, contrastive_from: int = CONTRASTIVE_FROM, d_model: int = 256):
        super().__init__(num_classes)
        self.alpha, self.gamma, self.lambda_ = alpha, gamma, lambda_
        self.temperature, self.noise = temperature, noise
        self.contrastive_weight, self.contrastive_from = contrastive_weight, contrastive_from
        self.spatial_channel_att = CoGuidedAttention(psai, beta)
        self.v_fc = nn.Linear(512, 512)
        self.dropout = nn.Dropout(0.2)
        self.video_encoder = TemporalEncoder(512, d_model, 1024)
        self.video_decoder = CrossModalDecoder(512, d_model, 512)
        self.audio_encoder = TemporalEncoder(d_model, d_model, 1024)
        self.audio_decoder = CrossModalDecoder(d_model, d_model, 512)
        self.audio_visual_rnn_layer = AudioVisualRNN(128, 512, d_model)
        self.audio_gated = nn.Sequential(nn.Linear(d_model, 1), nn.Sigmoid())
        self.video_gated = nn.Sequential(nn.Linear(d_model, 1), nn.Sigmoid())
        self.AVInter = AudioVideoInter(4, d_model, attention_dropout=0.2, batch_first=True)
        self.VAInter = AudioVideoInter(4, d_model, attention_dropout=0.2, batch_first=True)
        self.localize_module = _LocalizeHead(d_model, num_classes)
        self.audio_cas = nn.Linear(d_model, num_classes)
        self.video_cas = nn.Linear(d_model, num_classes)
        self.register_buffer("contrastive_switch", torch.tensor(False))

    def options(self) -> dict:
        return {"contrastive_from": self.contrastive_from}

    def start_epoch(self, epoch: int) -> None:
        self.contrastive_switch.fill_(epoch >= self.contrastive_from)

    def forward(self, audio: Tensor, visual: Tensor) -> ModelOutput:
        visual = self.dropout(F.relu(self.v_fc(visual)))
        visual, audio, maps = self.spatial_channel_att(visual, audio)
        audio_seq, visual_seq = self.audio_visual_rnn_layer(audio, visual)

        video_memory = self.video_encoder(visual_seq)
        audio_query = self.audio_decoder(audio_seq, video_memory)
        audio_memory = self.audio_encoder(audio_seq)
        video_query = self.video_decoder(visual_seq, audio_memory)

        audio_gate, video_gate = self.audio_gated(audio_memory), self.video_gated(video_memory)
        video_query = video_query + audio_gate * video_query * self.alpha
        audio_query = audio_query + video_gate * audio_query * self.alpha
        cas_score = (_top4_mean(self.video_cas(video_query)) + _top4_mean(self.audio_cas(audio_query))) / 2

        video_query = self.AVInter(video_query, audio_query)
        audio_query = self.VAInter(audio_query, video_query)
        fused = (video_query + audio_query) / 2

        head = self.localize_module
        projected = head.encoder_q(fused)
        content = fused + self.lambda_ * projected if bool(self.contrastive_switch) else fused
        category = head.event_classifier(fused.max(dim=1).values) + self.gamma * cas_score
        return ModelOutput(
            event_logits=head.classifier(content).squeeze(-1), category_logits=category, fusion=fused,
            attention=maps["audio_guided_spatial"],
            extras={**maps, "av_gate": (audio_gate * video_gate).squeeze(-1), "cas_score": cas_score,
                    "query": F.normalize(projected, dim=-1)})

    def explain(self, out: ModelOutput) -> dict[str, Tensor]:
        """The co-guidance maps: audio-guided and visual self spatial attention [B,T,7,7], visual-guided
        audio attention over the segments [B,T,T]."""
        return {name: out.extras[name] for name in ("audio_guided_spatial", "visual_self_spatial",
                                                    "visual_guided_audio")}

    def contrastive_key(self, fusion: Tensor) -> Tensor:
        """The augmented view: ``encoder_q`` of the fused features plus Gaussian noise (std ``noise``), drawn
        [T,B,D] and transposed, as the authors' [T,B,D] tensor draws it, so a seed gives the same noise."""
        noise = torch.randn(fusion.shape[1], fusion.shape[0], fusion.shape[2], dtype=fusion.dtype, device=fusion.device)
        noisy = fusion + noise.transpose(0, 1) * self.noise
        return F.normalize(self.localize_module.encoder_q(noisy), dim=-1)

    def compute_loss(self, out: ModelOutput, segment_labels: Tensor, video_labels: Tensor) -> dict[str, Tensor]:
        is_event = (segment_labels != self.background).to(out.event_logits.dtype)
        categories = losses.released_categories(segment_labels, self.background)
        event = F.binary_cross_entropy_with_logits(out.event_logits, is_event)
        category = F.cross_entropy(out.category_logits, categories)
        gate = F.binary_cross_entropy_with_logits(out.extras["av_gate"], is_event)
        cas = F.cross_entropy(out.extras["cas_score"], categories)
        contrastive = background_event_contrastive_loss(
            out.extras["query"], self.contrastive_key(out.fusion), is_event, self.temperature)
        total = event + category + gate + cas
        if bool(self.contrastive_switch):
            total = total + self.contrastive_weight * contrastive
        return {"loss": total, "event": event, "category": category, "gate": gate, "cas": cas,
                "contrastive": contrastive}


def build_cace(setting: str, num_classes: int = 28, contrastive_from: int | None = None) -> CACENet:
    return CACENet(num_classes=num_classes, contrastive_from=CONTRASTIVE_FROM if contrastive_from is None
                   else int(contrastive_from))


def import_cace_state(state: dict[str, Tensor], setting: str) -> dict[str, Tensor]:
    """The authors' keys are ours (their unused template layers, decoder ``self_attn``, ``a_fc``,
    ``v_norm2`` and ``ave_bottleneck`` are ignored); the enhanced event logit is switched on, as their
    evaluation does (supv_main.py:120)."""
    return {**state, "contrastive_switch": torch.tensor(True)}


CONTRASTIVE_FROM_OPTION = ModelOption(
    "contrastive_from", int, f"The epoch (1-based) from which the contrastive term and the enhanced event logit "
                             f"are on (default {CONTRASTIVE_FROM}, as in the authors' 200-epoch run).")

FAMILIES = (
    ModelFamily(
        name="cace", summary="Co-guidance attention and contrastive enhancement (He et al., ACM MM 2024)",
        build=build_cace, settings=("fully",),
        recipes={AUTHORS: {"fully": Recipe(
            epochs=200, batch_size=64, lr=7e-4, lr_milestones=(10, 20, 30), lr_gamma=0.5, clip_grad_norm=0.5,
            source="CACE-Net README.md:72 (lr, clipping, epochs, batch), CACE/supv_main.py:104-106 "
                   "(Adam, MultiStepLR [10,20,30] x0.5)")}},
        options=(CONTRASTIVE_FROM_OPTION,), import_state=import_cace_state,
        published={"fully": 80.8}),    # the paper's VGG-19/VGGish figure (80.796%, README.md:72-96)
)
