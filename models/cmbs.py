"""CMBS, cross-modal background suppression (Xia & Zhao, CVPR 2022), fully and weakly supervised.

The networks follow the authors' released code (marmot-xy/CMBS ``model/main_model.py``,
``model/models.py``); attribute names equal theirs so their state-dicts map one to one, except
the layers their forward never uses (see :func:`import_cmbs_state`). Every network works for any
number of segments T. docs/models.md#cmbs says where the code differs from the paper.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avepipe.models.base import EventNetwork
from avepipe.models.cmran import AudioVideoInter, LocalizeHeads
from avepipe.models.event_category import EventCategoryRule, event_category_scores
from avepipe.models.outputs import ModelOutput
from avepipe.models.registry import AUTHORS, ModelFamily, ModelOption, Recipe

D_MODEL = 256
TOP_K = 4          # segments averaged into a video's class-activation score
# alpha (gate strength), gamma (CAS weight), beta (self-attention weight): configs/main.json, configs/weak.json
FULLY = {"alpha": 0.1, "gamma": 0.3, "beta": 0.4}
WEAKLY = {"alpha": 0.2, "gamma": 0.5, "beta": 0.5}
DECISIONS = ("segment", "released-video")


class GuidedAttentionLayers(nn.Module):
    """The layers CMBS's audio-guided attention and CACE-Net's co-guidance attention (models/cace_attention.py)
    share, declared once: audio-guided channel and spatial attention, a self-attention of the 7x7 cells, the
    visual self spatial attention. A subclass adds its own layers in ``declare_after_cell_attention`` and
    after this ``__init__``, so every layer keeps its place in the authors' order (seeded initialisation and
    saved optimiser states follow the parameter order). No forward: each subclass computes its own.
    """

    def __init__(self, visual_dim: int, audio_dim: int, hidden: int):
        super().__init__()
        self.affine_video_1 = nn.Linear(visual_dim, visual_dim)
        self.affine_audio_1 = nn.Linear(audio_dim, visual_dim)
        self.affine_bottleneck = nn.Linear(visual_dim, hidden)
        self.affine_v_c_att = nn.Linear(hidden, visual_dim)
        self.affine_video_2 = nn.Linear(visual_dim, hidden)
        self.affine_audio_2 = nn.Linear(audio_dim, hidden)
        self.affine_v_s_att = nn.Linear(hidden, 1)
        self.video_query = nn.Linear(visual_dim, visual_dim // 4)
        self.video_key = nn.Linear(visual_dim, visual_dim // 4)
        self.video_value = nn.Linear(visual_dim, visual_dim)
        self.declare_after_cell_attention(visual_dim)
        self.affine_video_ave = nn.Linear(visual_dim, hidden)
        self.affine_video_3 = nn.Linear(visual_dim, hidden)
        self.ave_v_att = nn.Linear(hidden, 1)
        self.dropout = nn.Dropout(0.2)

    def declare_after_cell_attention(self, visual_dim: int) -> None:
        """Where CACE-Net adds its cell LayerNorm and second self-attention; CMBS has nothing here."""


class AudioGuidedAttention(GuidedAttentionLayers):
    """Visual self-attention over the 7x7 cells, then audio-guided channel and spatial attention.

    The authors' ``New_Audio_Guided_Attention`` without its unused ``ave_bottleneck``. Returns the
    attended visual feature [B,T,512] and the two spatial maps [B,T,7,7] (audio-guided, self).
    """

    def __init__(self, beta: float, visual_dim: int = 512, audio_dim: int = 128, hidden: int = 256):
        super().__init__(visual_dim, audio_dim, hidden)
        self.beta = beta
        self.norm = nn.LayerNorm(visual_dim)

    @staticmethod
    def _pool(query: Tensor, scorer: nn.Linear, cells: Tensor) -> tuple[Tensor, Tensor]:
        """softmax over cells of tanh(score): the map [N,cells] and the pooled feature [N,dim]."""
        weights = F.softmax(torch.tanh(scorer(query)).squeeze(-1), dim=-1)
        return weights, torch.einsum("nc,ncd->nd", weights, cells)

    def forward(self, visual: Tensor, audio: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        batch, segments, h, w, dim = visual.shape
        cells = visual.reshape(batch * segments, h * w, dim)
        audio = audio.reshape(batch * segments, -1)
        energy = self.video_query(cells) @ self.video_key(cells).transpose(1, 2)
        attended = self.norm(cells + self.dropout(F.softmax(energy, dim=-1) @ self.video_value(cells)))
        # self spatial attention, queried by the mean cell
        mean_cell = F.relu(self.affine_video_ave(attended.mean(dim=1))).unsqueeze(1)
        self_map, self_feat = self._pool(F.relu(self.affine_video_3(attended)) * mean_cell, self.ave_v_att, attended)
        # audio-guided channel attention on the raw cells
        joint = (F.relu(self.affine_audio_1(audio)).unsqueeze(1) * F.relu(self.affine_video_1(attended))).mean(dim=1)
        channel = torch.sigmoid(self.affine_v_c_att(F.relu(self.affine_bottleneck(joint))))
        channelled = cells * (channel.unsqueeze(1) + 1)
        # audio-guided spatial attention on the channel-attended cells
        query = F.relu(self.affine_video_2(channelled)) * F.relu(self.affine_audio_2(audio)).unsqueeze(1)
        spatial_map, feature = self._pool(query, self.affine_v_s_att, channelled)
        feature = feature + self.beta * torch.sigmoid(self_feat) * feature
        shape = (batch, segments, h, w)
        return feature.reshape(batch, segments, dim), spatial_map.reshape(shape), self_map.reshape(shape)


class TemporalRelation(nn.Module):
    """The authors' ``InternalTemporalRelationModule``: a projection, then two self-attention encoder layers."""

    def __init__(self, input_dim: int, feedforward: int, d_model: int = D_MODEL):
        super().__init__()
        layer = nn.TransformerEncoderLayer(d_model, nhead=4, dim_feedforward=feedforward, dropout=0.1)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.affine_matrix = nn.Linear(input_dim, d_model)

    def forward(self, feature: Tensor) -> Tensor:
        return self.encoder(self.affine_matrix(feature))


class _DecoderLayer(nn.Module):
    """Attention from the query segments to [memory; query], then a feed-forward block (post-norm)."""

    def __init__(self, d_model: int, feedforward: int, nhead: int = 4, dropout: float = 0.1):
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, query: Tensor, memory: Tensor) -> tuple[Tensor, Tensor]:
        attended, weights = self.multihead_attn(query, torch.cat([memory, query]), torch.cat([memory, query]))
        query = self.norm1(query + self.dropout1(attended))
        query = self.norm2(query + self.dropout2(self.linear2(self.dropout(F.relu(self.linear1(query))))))
        return query, weights


class _Decoder(nn.Module):
    def __init__(self, layer: _DecoderLayer):
        super().__init__()
        self.layers = nn.ModuleList([layer])


class CrossModalRelation(nn.Module):
    """The authors' ``CrossModalRelationAttModule``: one modality's segments query the other's.

    Returns the attended query [T,B,d] and the weights [B,T,T] of each query segment on the other
    modality's segments (the first T of the 2T keys)."""

    def __init__(self, input_dim: int, feedforward: int = 1024, d_model: int = D_MODEL):
        super().__init__()
        self.decoder = _Decoder(_DecoderLayer(d_model, feedforward))
        self.affine_matrix = nn.Linear(input_dim, d_model)

    def forward(self, query: Tensor, memory: Tensor) -> tuple[Tensor, Tensor]:
        output, weights = self.decoder.layers[0](self.affine_matrix(query), memory)
        return output, weights[:, :, :memory.shape[0]]


def _gate(d_model: int = D_MODEL) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_model, 1), nn.Sigmoid())


def top_k_mean(scores: Tensor, k: int = TOP_K) -> Tensor:
    """[B,T,K] -> [B,K]: per class, the mean of its k highest segment scores (all T when T < k)."""
    return scores.topk(min(k, scores.shape[1]), dim=1).values.mean(dim=1)


class _CMBSBase(EventNetwork):
    """What both settings share: v_fc, the audio-guided attention, the gates and AV interaction."""

    model_name = "cmbs"

    def __init__(self, num_classes: int, alpha: float, gamma: float, beta: float, dropout: float, heads: int,
                 cas_classes: int):
        super().__init__(num_classes)
        self.alpha, self.gamma = alpha, gamma
        self.spatial_channel_att = AudioGuidedAttention(beta)
        self.v_fc = nn.Linear(512, 512)
        self.dropout = nn.Dropout(dropout)
        self.audio_gated = _gate()
        self.video_gated = _gate()
        self.AVInter = AudioVideoInter(heads, attention_dropout=0.2)
        self.VAInter = AudioVideoInter(heads, attention_dropout=0.2)
        self.audio_cas = nn.Linear(D_MODEL, cas_classes)
        self.video_cas = nn.Linear(D_MODEL, cas_classes)

    def attend(self, audio: Tensor, visual: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """[B,T,512] visual feature after v_fc and the audio-guided attention, and its spatial maps."""
        feature, spatial, self_spatial = self.spatial_channel_att(self.dropout(F.relu(self.v_fc(visual))), audio)
        return feature, {"spatial": spatial, "self_spatial": self_spatial}

    def interact(self, video: Tensor, audio: Tensor) -> Tensor:
        """[B,T,d]: the mean of both modalities after the two audio-visual interaction blocks."""
        video = self.AVInter(video, audio)
        audio = self.VAInter(audio, video)
        return ((video + audio) / 2).transpose(0, 1)

    def set_dropout(self, p: float) -> None:
        """Also the attention dropout inside every nn.MultiheadAttention."""
        super().set_dropout(p)
        for module in self.modules():
            if isinstance(module, nn.MultiheadAttention):
                module.dropout = p

    def explain(self, out: ModelOutput) -> dict[str, Tensor]:
        """The audio-guided spatial map, the visual self-attention map, and the cross-modal relation
        weights [B,T,T] (audio segments on visual ones, visual on audio)."""
        names = ("self_spatial", "audio_on_visual", "visual_on_audio")
        return {"attention": out.attention, **{name: out.extras[name] for name in names}}


class AudioVisualRNN(nn.Module):
    """The authors' ``RNNEncoder`` (CACE-Net's too): a Bi-LSTM per modality (audio 2x128, visual 2x512; their
    dropout is a no-op with one layer)."""

    def __init__(self, audio_dim: int = 128, visual_dim: int = 512, d_model: int = D_MODEL):
        super().__init__()
        self.audio_rnn = nn.LSTM(audio_dim, d_model // 2, batch_first=True, bidirectional=True)
        self.visual_rnn = nn.LSTM(visual_dim, d_model, batch_first=True, bidirectional=True)

    def forward(self, audio: Tensor, visual: Tensor) -> tuple[Tensor, Tensor]:
        return self.audio_rnn(audio)[0], self.visual_rnn(visual)[0]


class CMBSNet(EventCategoryRule, _CMBSBase):
    """Fully supervised CMBS (the authors' ``supv_main_model``): event logit per segment, one category
    per video (from the max over segments, plus gamma times the CAS score), background-suppression gates."""

    def __init__(self, num_classes: int = 28, alpha: float = FULLY["alpha"], gamma: float = FULLY["gamma"],
                 beta: float = FULLY["beta"]):
        super().__init__(num_classes, alpha, gamma, beta, dropout=0.2, heads=4, cas_classes=num_classes)
        self.video_encoder = TemporalRelation(512, 1024)
        self.video_decoder = CrossModalRelation(512)
        self.audio_encoder = TemporalRelation(D_MODEL, 1024)
        self.audio_decoder = CrossModalRelation(D_MODEL)
        self.audio_visual_rnn_layer = AudioVisualRNN()
        self.localize_module = LocalizeHeads(num_classes, batch_first=True)

    def forward(self, audio: Tensor, visual: Tensor) -> ModelOutput:
        visual, maps = self.attend(audio, visual)
        audio, visual = (x.transpose(0, 1) for x in self.audio_visual_rnn_layer(audio, visual))   # [T,B,.]
        video_key = self.video_encoder(visual)
        audio_query, audio_on_visual = self.audio_decoder(audio, video_key)
        audio_key = self.audio_encoder(audio)
        video_query, visual_on_audio = self.video_decoder(visual, audio_key)
        audio_gate, video_gate = self.audio_gated(audio_key), self.video_gated(video_key)
        video_query = video_query + audio_gate * video_query * self.alpha
        audio_query = audio_query + video_gate * audio_query * self.alpha
        cas = (top_k_mean(self.video_cas(video_query).transpose(0, 1))
               + top_k_mean(self.audio_cas(audio_query).transpose(0, 1))) / 2
        event_logits, category_logits = self.localize_module(self.interact(video_query, audio_query))
        gate = (audio_gate * video_gate).squeeze(-1).transpose(0, 1)
        return ModelOutput(event_logits=event_logits, category_logits=category_logits + self.gamma * cas,
                           attention=maps["spatial"],
                           extras={"gate": gate, "cas": cas, "self_spatial": maps["self_spatial"],
                                   "audio_on_visual": audio_on_visual, "visual_on_audio": visual_on_audio})

    def compute_loss(self, out: ModelOutput, segment_labels: Tensor, video_labels: Tensor) -> dict[str, Tensor]:
        """BCE on the event logits, BCE-with-logits on the gate (a probability, as the authors' code
        does), cross-entropy of the category and of the CAS score against the video's class (the
        largest event class index over its segments, 0 for a video without an event)."""
        is_event = segment_labels != self.background
        target = is_event.to(out.event_logits.dtype)
        category = torch.where(is_event, segment_labels, torch.zeros_like(segment_labels)).max(dim=1).values
        terms = {"event": F.binary_cross_entropy_with_logits(out.event_logits, target),
                 "gate": F.binary_cross_entropy_with_logits(out.extras["gate"], target),
                 "category": F.cross_entropy(out.category_logits, category),
                 "cas": F.cross_entropy(out.extras["cas"], category)}
        return {"loss": sum(terms.values()), **terms}


class WeaklyCMBSNet(EventCategoryRule, _CMBSBase):
    """Weakly supervised CMBS (the authors' ``weak_main_model``), trained from video labels only.

    A C+1-way class-activation sequence, scaled by each modality's own CAS probabilities, is
    averaged over its top 4 segments into one video score s; the video prediction is
    softmax_c(max_t gate_t * s_c). ``decision`` picks the segment rule: ``segment`` (default) labels a
    segment argmax_c s_c when its gate exceeds 0.5, else background; ``released-video`` is what the
    authors' accuracy computes (their extra sigmoid makes every gate pass): argmax_c s_c everywhere.
    """

    setting = "weakly"

    def __init__(self, num_classes: int = 28, alpha: float = WEAKLY["alpha"], gamma: float = WEAKLY["gamma"],
                 beta: float = WEAKLY["beta"], decision: str = "segment"):
        if decision not in DECISIONS:
            raise ValueError(f"unknown CMBS decision {decision!r} (expected one of {', '.join(DECISIONS)})")
        super().__init__(num_classes, alpha, gamma, beta, dropout=0.1, heads=2, cas_classes=num_classes + 1)
        self.decision = decision
        self.video_encoder = TemporalRelation(512, 2048)
        self.video_decoder = CrossModalRelation(512)
        self.audio_encoder = TemporalRelation(128, 2048)
        self.audio_decoder = CrossModalRelation(128)
        self.CAS_model = nn.Linear(D_MODEL, num_classes + 1, bias=False)

    def options(self) -> dict:
        return {"decision": self.decision}

    def forward(self, audio: Tensor, visual: Tensor) -> ModelOutput:
        visual, maps = self.attend(audio, visual)
        audio, visual = audio.transpose(0, 1), visual.transpose(0, 1)       # [T,B,.]
        video_key = self.video_encoder(visual)
        audio_query, audio_on_visual = self.audio_decoder(audio, video_key)
        audio_key = self.audio_encoder(audio)
        video_query, visual_on_audio = self.video_decoder(visual, audio_key)
        audio_gate, video_gate = self.audio_gated(video_key), self.video_gated(audio_key)
        video_query = (1 - self.alpha) * video_query + audio_gate * video_query * self.alpha
        audio_query = (1 - self.alpha) * audio_query + video_gate * audio_query * self.alpha
        cas_gates = torch.sigmoid(self.video_cas(video_query)) + torch.sigmoid(self.audio_cas(audio_query))
        cas = self.gamma * cas_gates.transpose(0, 1) * self.CAS_model(self.interact(video_query, audio_query))
        video_logits = top_k_mean(cas)                                                 # [B,C+1]
        gate = ((audio_gate + video_gate) / 2).squeeze(-1).transpose(0, 1)             # [B,T]
        logits = gate.unsqueeze(-1) * video_logits.unsqueeze(1)
        return ModelOutput(logits=logits, video_prob=F.softmax(logits.max(dim=1).values, dim=-1),
                           category_logits=video_logits, attention=maps["spatial"],
                           extras={"gate": gate, "self_spatial": maps["self_spatial"],
                                   "audio_on_visual": audio_on_visual, "visual_on_audio": visual_on_audio})

    def compute_loss(self, out: ModelOutput, segment_labels: Tensor, video_labels: Tensor) -> dict[str, Tensor]:
        """Multi-label soft margin loss of the video probabilities against the video label (background
        column set only for a video without an event); ``segment_labels`` are not used."""
        video = F.multilabel_soft_margin_loss(out.video_prob, video_labels.to(out.video_prob.dtype))
        return {"loss": video, "video": video}

    def segment_scores(self, out: ModelOutput) -> Tensor:
        """[B,T,1+C+1]: the gate, then the video's C+1 class probabilities repeated per segment."""
        gate = out.extras["gate"]
        return event_category_scores(torch.ones_like(gate) if self.decision == "released-video" else gate,
                                     out.category_logits)

    def class_probabilities(self, scores: Tensor) -> Tensor:
        """P(c) = gate P(c) for events, P(background) = 1 - gate + gate P(background)."""
        gate, classes = scores[..., :1], scores[..., 1:]
        probabilities = gate * classes
        probabilities[..., -1] += 1.0 - gate[..., 0]
        return probabilities


def build_cmbs(setting: str, num_classes: int = 28, decision: str | None = None) -> _CMBSBase:
    if setting == "weakly":
        return WeaklyCMBSNet(num_classes=num_classes, decision=decision or "segment")
    return CMBSNet(num_classes=num_classes)


def import_cmbs_state(state: dict[str, Tensor], setting: str) -> dict[str, Tensor]:
    """The weakly CAS classifier is a kernel-1 Conv1d in the authors' code ([C+1, d, 1]); ours is a Linear.

    Their template layers (``*.encoder_layer.*``, ``*.decoder_layer.*``), decoder self-attention,
    ``video_norm``/``audio_norm``, ``ave_bottleneck`` and weakly ``classifier`` are never used in
    forward and are left for the importer to ignore."""
    renamed = dict(state)
    conv = renamed.pop("CAS_model.classifier.0.weight", None)
    if conv is not None:
        renamed["CAS_model.weight"] = conv.squeeze(-1)
    return renamed


DECISION = ModelOption("decision", str, "weakly CMBS segment rule: segment (default) labels a segment by its "
                                        "background-suppression gate; released-video is the authors' accuracy rule, "
                                        "one label per video (docs/models.md#cmbs).", choices=DECISIONS,
                       settings=("weakly",))

# Adam without weight decay, gradient norm clipped at 0.5, MultiStepLR x0.5 stepped per epoch (docs/models.md#cmbs)
AUTHORS_FULLY = Recipe(epochs=200, batch_size=64, lr=7e-4, lr_milestones=(10, 20, 30), lr_gamma=0.5, clip_grad_norm=0.5,
                       source="CMBS 48e1ffc supv_train.sh:3,4,6,7; supv_main.py:99,101,192-193")
AUTHORS_WEAKLY = Recipe(epochs=200, batch_size=64, lr=6e-4, lr_milestones=(10, 20, 40), lr_gamma=0.5,
                        clip_grad_norm=0.5, source="CMBS 48e1ffc weakly_train.sh:3,4,5,8; weakly_main.py:87,90,175-176")
FAMILIES = (ModelFamily(name="cmbs", summary="Cross-modal background suppression (Xia & Zhao, CVPR 2022)",
                        build=build_cmbs, recipes={AUTHORS: {"fully": AUTHORS_FULLY, "weakly": AUTHORS_WEAKLY}},
                        options=(DECISION,), import_state=import_cmbs_state,
                        # the paper's AVE accuracies; the weakly one is the released-video rule
                        published={"fully": 79.3, "weakly": 74.2}),)
