"""CMRAN (Xu et al., ACM MM 2020), fully and weakly supervised, as the original FloretCat/CMRAN code computes it.

Audio-guided channel and spatial attention on the 7x7 VGG maps, then per modality a self-attention
encoder and a cross-modal relation attention (CMRA) decoder whose query attends to the other
modality's encoded segments and to its own, an audio-video interaction block and the event/category
heads (docs/models.md). Sequences run segment-first ([T,B,D]) through ``nn.MultiheadAttention`` as in
the authors' code. Attribute names equal theirs, so their state-dicts load by key.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avepipe.models.base import EventNetwork
from avepipe.models.event_category import EventCategoryRule, event_category_loss, weak_video_prediction
from avepipe.models.outputs import ModelOutput
from avepipe.models.registry import AUTHORS, ModelFamily, Recipe

D_MODEL = 256


class AudioGuidedAttention(nn.Module):
    """Audio-guided channel attention (visual x (1 + sigmoid gate)) then spatial attention over the 49 cells."""

    def __init__(self, audio_dim: int = 128, visual_dim: int = 512):
        super().__init__()
        self.affine_video_1 = nn.Linear(visual_dim, 512)
        self.affine_audio_1 = nn.Linear(audio_dim, 512)
        self.affine_bottleneck = nn.Linear(512, 256)
        self.affine_v_c_att = nn.Linear(256, visual_dim)
        self.affine_video_2 = nn.Linear(visual_dim, 256)
        self.affine_audio_2 = nn.Linear(audio_dim, 256)
        self.affine_v_s_att = nn.Linear(256, 1)

    def forward(self, visual: Tensor, audio: Tensor) -> tuple[Tensor, Tensor]:
        """visual [B,T,H,W,C], audio [B,T,da] -> (attended [B,T,C], spatial attention [B,T,H,W])."""
        batch, segments, height, width, channels = visual.shape
        maps = visual.reshape(batch * segments, height * width, channels)
        audio = audio.reshape(batch * segments, 1, -1)
        joint = (F.relu(self.affine_audio_1(audio)) * F.relu(self.affine_video_1(maps))).mean(dim=1)
        gate = torch.sigmoid(self.affine_v_c_att(F.relu(self.affine_bottleneck(joint))))       # [N,C]
        maps = maps * (gate.unsqueeze(1) + 1)
        query = F.relu(self.affine_video_2(maps)) * F.relu(self.affine_audio_2(audio))           # [N,49,256]
        spatial = F.softmax(torch.tanh(self.affine_v_s_att(query)).transpose(1, 2), dim=-1)     # [N,1,49]
        attended = torch.bmm(spatial, maps).reshape(batch, segments, channels)
        return attended, spatial.reshape(batch, segments, height, width)


class RelationLayer(nn.Module):
    """Post-norm attention layer (attention, residual, LayerNorm, ReLU feed-forward 2048, residual, LayerNorm).

    ``cross``: the CMRA layer, whose query attends to [memory; query] (attribute ``multihead_attn``);
    otherwise self-attention (``self_attn``). Returns the head-averaged attention weights too.
    """

    def __init__(self, d_model: int, nhead: int, cross: bool, dim_feedforward: int = 2048, dropout: float = 0.1):
        super().__init__()
        self.cross = cross
        self.add_module("multihead_attn" if cross else "self_attn",
                        nn.MultiheadAttention(d_model, nhead, dropout=dropout))
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, query: Tensor, memory: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """query [T,B,D], memory [S,B,D] (cross only) -> (output [T,B,D], weights [B,T,S+T] or [B,T,T])."""
        if self.cross:
            keys = torch.cat([memory, query], dim=0)
            attended, weights = self.multihead_attn(query, keys, keys)
        else:
            attended, weights = self.self_attn(query, query, query)
        x = self.norm1(query + self.dropout1(attended))
        x = self.norm2(x + self.dropout2(self.linear2(self.dropout(F.relu(self.linear1(x))))))
        return x, weights


class RelationModule(nn.Module):
    """``affine_matrix`` to d_model, then ``num_layers`` copies of one freshly initialised RelationLayer
    (deep copies, so they start equal, as the authors' ``_get_clones``) under ``encoder``/``decoder.layers``."""

    def __init__(self, input_dim: int, num_layers: int, cross: bool, d_model: int = D_MODEL, nhead: int = 4):
        super().__init__()
        self.stack = "decoder" if cross else "encoder"
        layer = RelationLayer(d_model, nhead, cross)
        self.add_module(self.stack, nn.ModuleDict({"layers": nn.ModuleList(
            [copy.deepcopy(layer) for _ in range(num_layers)])}))
        self.affine_matrix = nn.Linear(input_dim, d_model)

    def forward(self, query: Tensor, memory: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x, weights = self.affine_matrix(query), None
        for layer in getattr(self, self.stack)["layers"]:
            x, weights = layer(x, memory)
        return x, weights


class AudioVideoInter(nn.Module):
    """CMRAN's fusion, reused by CMBS and CACE-Net: g = v * a attends to the segments of [a; v], then a
    residual and LayerNorm. Sequence-first [T,B,D] unless ``batch_first`` (as CACE-Net's code runs it)."""

    def __init__(self, heads: int, d_model: int = D_MODEL, attention_dropout: float = 0.1, batch_first: bool = False):
        super().__init__()
        self.dropout = nn.Dropout(0.1)
        self.video_multihead = nn.MultiheadAttention(d_model, num_heads=heads, dropout=attention_dropout,
                                                     batch_first=batch_first)
        self.norm1 = nn.LayerNorm(d_model)
        self.segment_dim = 1 if batch_first else 0

    def forward(self, video: Tensor, audio: Tensor) -> Tensor:
        joint = video * audio
        memory = torch.cat([audio, video], dim=self.segment_dim)
        return self.norm1(joint + self.dropout(self.video_multihead(joint, memory, memory)[0]))


class LocalizeHeads(nn.Module):
    """``classifier``: per-segment event logit; ``event_classifier``: categories from the max over the segments.

    The layers of the authors' localisation modules (CMRAN model/main_model.py:44-87), CMBS's too. ``fused`` is
    sequence-first [T,B,D] unless ``batch_first`` (CMBS's fused output is [B,T,D])."""

    def __init__(self, categories: int, d_model: int = D_MODEL, batch_first: bool = False):
        super().__init__()
        self.classifier = nn.Linear(d_model, 1)
        self.event_classifier = nn.Linear(d_model, categories)
        self.segment_dim = 1 if batch_first else 0

    def forward(self, fused: Tensor) -> tuple[Tensor, Tensor]:
        """fused [T,B,D] or [B,T,D] -> (event logits [B,T], category logits [B,K])."""
        events = self.classifier(fused).squeeze(-1)
        categories = self.event_classifier(fused.max(dim=self.segment_dim).values)
        return (events if self.segment_dim else events.T), categories


class _CMRANBase(EventCategoryRule, EventNetwork):
    """The shared CMRAN network; ``categories`` and the interaction heads differ between the settings.

    ``explain``: the spatial attention [B,T,7,7] and, per modality, the CMRA weights of its query over the
    other modality's segments [B,T,T] (the rest of each row went to its own segments).
    """

    model_name = "cmran"

    def __init__(self, num_classes: int, categories: int, inter_heads: int):
        super().__init__(num_classes)
        self.spatial_channel_att = AudioGuidedAttention()
        self.v_fc = nn.Linear(512, 512)
        self.dropout = nn.Dropout(0.2)
        self.video_encoder = RelationModule(512, num_layers=2, cross=False)
        self.video_decoder = RelationModule(512, num_layers=1, cross=True)
        self.audio_encoder = RelationModule(128, num_layers=2, cross=False)
        self.audio_decoder = RelationModule(128, num_layers=1, cross=True)
        self.AVInter = AudioVideoInter(inter_heads)
        self.localize_module = LocalizeHeads(categories)

    def forward(self, audio: Tensor, visual: Tensor) -> ModelOutput:
        segments = audio.shape[1]
        attended, spatial = self.spatial_channel_att(self.dropout(F.relu(self.v_fc(visual))), audio)
        # [T,B,D], contiguous as theirs: a strided input takes other float32 kernels (gradients off by 1e-4)
        video, audio = attended.transpose(0, 1).contiguous(), audio.transpose(0, 1).contiguous()
        audio_query, audio_weights = self.audio_decoder(audio, self.video_encoder(video)[0])
        video_query, video_weights = self.video_decoder(video, self.audio_encoder(audio)[0])
        fused = self.AVInter(video_query, audio_query)
        event_logits, category_logits = self.localize_module(fused)
        return ModelOutput(event_logits=event_logits, category_logits=category_logits, attention=spatial,
                           fusion=fused.transpose(0, 1),
                           extras={"audio_attends_visual": audio_weights[..., :segments],
                                   "visual_attends_audio": video_weights[..., :segments]})

    def explain(self, out: ModelOutput) -> dict[str, Tensor]:
        return {"attention": out.attention, **out.extras}


class CMRANNet(_CMRANBase):
    """Fully supervised CMRAN: event BCE per segment + category cross-entropy per video (28 classes)."""

    def __init__(self, num_classes: int = 28):
        super().__init__(num_classes, categories=num_classes, inter_heads=4)

    def compute_loss(self, out: ModelOutput, segment_labels: Tensor, video_labels: Tensor) -> dict[str, Tensor]:
        event, category = event_category_loss(out, segment_labels, self.background)
        return {"loss": event + category, "event": event, "category": category}


class WeaklyCMRANNet(_CMRANBase):
    """Weakly supervised CMRAN: categories include background (29), video prediction softmax(max_t
    sigmoid(event) * category), multi-label soft margin loss against the video label."""

    setting = "weakly"

    def __init__(self, num_classes: int = 28):
        super().__init__(num_classes, categories=num_classes + 1, inter_heads=2)

    def forward(self, audio: Tensor, visual: Tensor) -> ModelOutput:
        out = super().forward(audio, visual)
        out.video_prob = weak_video_prediction(out.event_logits, out.category_logits)
        return out

    def compute_loss(self, out: ModelOutput, segment_labels: Tensor, video_labels: Tensor) -> dict[str, Tensor]:
        """``segment_labels`` are not used; the target is the whole video label, its background column set
        only for background-only videos (as the authors' ``mil_labels.h5`` / ``labels_noisy.h5``)."""
        video = F.multilabel_soft_margin_loss(out.video_prob, video_labels.to(out.video_prob.dtype))
        return {"loss": video, "video": video}


def build_cmran(setting: str, num_classes: int = 28) -> _CMRANBase:
    return (WeaklyCMRANNet if setting == "weakly" else CMRANNet)(num_classes=num_classes)


# FloretCat/CMRAN @3369be5: Adam without weight decay, MultiStepLR x0.5, epochs, lr and clipping from the
# train scripts, batch 32 (and the weakly clipping) from configs/default_config.yaml.
FAMILIES = (
    ModelFamily(
        name="cmran", summary="Cross-Modal Relation-Aware Networks (Xu et al., ACM MM 2020)", build=build_cmran,
        recipes={AUTHORS: {
            "fully": Recipe(epochs=200, batch_size=32, lr=5e-4, lr_milestones=(10, 20, 30), lr_gamma=0.5,
                            clip_grad_norm=0.1, source="CMRAN supv_train.sh:3-6, configs/default_config.yaml:3, "
                                                       "supv_main.py:84-86,166-167"),
            "weakly": Recipe(epochs=200, batch_size=32, lr=5e-4, lr_milestones=(5, 20, 40), lr_gamma=0.5,
                             clip_grad_norm=0.5, source="CMRAN weakly_train.sh:3,5, configs/default_config.yaml:3,7, "
                                                        "weakly_main.py:82-85,163-164")}},
        published={"fully": 77.4, "weakly": 72.9}),    # as PSP paper, Table 4, lists CMRAN
)
