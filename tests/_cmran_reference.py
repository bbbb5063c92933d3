"""CMRAN's forward pass written from the paper's description and the authors' layer layout, with plain tensor
ops on a raw state dict (their keys, ``module.`` removed): the independent reference for avepipe's CMRAN.

Batch-first throughout; multi-head attention is spelt out (in-projection, per-head softmax(q k^T / sqrt(d_h)),
out-projection), no ``nn.MultiheadAttention``. Evaluation mode (no dropout).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _linear(x, sd, name):
    return x @ sd[f"{name}.weight"].T + sd[f"{name}.bias"]


def attention(query, keys, sd, name, heads):
    """[B,L,D] attends to [B,S,D] -> (output [B,L,D], head-averaged weights [B,L,S])."""
    d = query.shape[-1]
    w, b = sd[f"{name}.in_proj_weight"], sd[f"{name}.in_proj_bias"]
    q, k, v = query @ w[:d].T + b[:d], keys @ w[d:2 * d].T + b[d:2 * d], keys @ w[2 * d:].T + b[2 * d:]
    outputs, weights = [], []
    for h in range(heads):
        part = slice(h * d // heads, (h + 1) * d // heads)
        a = torch.softmax(q[..., part] @ k[..., part].transpose(1, 2) / math.sqrt(d // heads), dim=-1)
        outputs.append(a @ v[..., part])
        weights.append(a)
    return _linear(torch.cat(outputs, dim=-1), sd, f"{name}.out_proj"), sum(weights) / heads


def _norm(x, sd, name):
    return F.layer_norm(x, x.shape[-1:], sd[f"{name}.weight"], sd[f"{name}.bias"], eps=1e-5)


def relation_layer(query, keys, sd, name, attn):
    out, weights = attention(query, keys, sd, f"{name}.{attn}", heads=4)
    x = _norm(query + out, sd, f"{name}.norm1")
    x = _norm(x + _linear(F.relu(_linear(x, sd, f"{name}.linear1")), sd, f"{name}.linear2"), sd, f"{name}.norm2")
    return x, weights


def encoder(x, sd, name):
    x = _linear(x, sd, f"{name}.affine_matrix")
    for i in range(2):
        x, _ = relation_layer(x, x, sd, f"{name}.encoder.layers.{i}", "self_attn")
    return x


def decoder(query, memory, sd, name):
    """CMRA: the query attends to the other modality's encoded segments followed by its own."""
    query = _linear(query, sd, f"{name}.affine_matrix")
    return relation_layer(query, torch.cat([memory, query], dim=1), sd, f"{name}.decoder.layers.0", "multihead_attn")


def guided_attention(visual, audio, sd):
    """visual [B,T,49,512] after v_fc, audio [B,T,128] -> (attended [B,T,512], spatial [B,T,49])."""
    def lin(x, name):
        return _linear(x, sd, f"spatial_channel_att.{name}")

    a1 = F.relu(lin(audio, "affine_audio_1"))[:, :, None]                       # [B,T,1,512]
    joint = (a1 * F.relu(lin(visual, "affine_video_1"))).mean(dim=2)
    channel = torch.sigmoid(lin(F.relu(lin(joint, "affine_bottleneck")), "affine_v_c_att"))
    visual = visual * (1 + channel[:, :, None])
    a2 = F.relu(lin(audio, "affine_audio_2"))[:, :, None]
    logits = torch.tanh(lin(F.relu(lin(visual, "affine_video_2")) * a2, "affine_v_s_att"))[..., 0]
    spatial = torch.softmax(logits, dim=-1)                                       # [B,T,49]
    return (spatial[..., None] * visual).sum(dim=2), spatial


def cmran_forward(audio, visual, sd, inter_heads):
    """-> event logits [B,T], category logits [B,K], spatial [B,T,49], audio->visual and visual->audio CMRA [B,T,T]."""
    batch, segments = audio.shape[:2]
    v = F.relu(_linear(visual.reshape(batch, segments, 49, 512), sd, "v_fc"))
    v, spatial = guided_attention(v, audio, sd)
    audio_query, w_av = decoder(audio, encoder(v, sd, "video_encoder"), sd, "audio_decoder")
    video_query, w_va = decoder(v, encoder(audio, sd, "audio_encoder"), sd, "video_decoder")
    joint = video_query * audio_query
    out, _ = attention(joint, torch.cat([audio_query, video_query], dim=1), sd, "AVInter.video_multihead", inter_heads)
    fused = _norm(joint + out, sd, "AVInter.norm1")
    event = _linear(fused, sd, "localize_module.classifier")[..., 0]
    category = _linear(fused.max(dim=1).values, sd, "localize_module.event_classifier")
    return event, category, spatial, w_av[..., :segments], w_va[..., :segments]


def _mha(prefix, d=256):
    return {f"{prefix}.in_proj_weight": (3 * d, d), f"{prefix}.in_proj_bias": (3 * d,),
            f"{prefix}.out_proj.weight": (d, d), f"{prefix}.out_proj.bias": (d,)}


def _layer(prefix, attentions):
    keys = {f"{prefix}.linear1.weight": (2048, 256), f"{prefix}.linear1.bias": (2048,),
            f"{prefix}.linear2.weight": (256, 2048), f"{prefix}.linear2.bias": (256,),
            **{f"{prefix}.{n}.{p}": (256,) for n in ("norm1", "norm2") for p in ("weight", "bias")}}
    for attn in attentions:
        keys.update(_mha(f"{prefix}.{attn}"))
    return keys


def authors_cmran_keys(setting: str) -> dict[str, tuple[int, ...]]:
    """Every key and shape of FloretCat/CMRAN's supv_main_model / weak_main_model state dict, as saved under
    nn.DataParallel: unused template layers (``encoder_layer``, ``decoder_layer``), decoder self-attention and
    ``affine_video_guided_*`` included."""
    att = {"affine_video_1": (512, 512), "affine_audio_1": (512, 128), "affine_bottleneck": (256, 512),
           "affine_v_c_att": (512, 256), "affine_video_2": (256, 512), "affine_audio_2": (256, 128),
           "affine_v_s_att": (1, 256), "affine_video_guided_1": (64, 512), "affine_video_guided_2": (128, 64)}
    keys = {}
    for name, shape in att.items():
        keys[f"spatial_channel_att.{name}.weight"] = shape
        keys[f"spatial_channel_att.{name}.bias"] = shape[:1]
    keys.update({"v_fc.weight": (512, 512), "v_fc.bias": (512,)})
    for modality, dim in (("video", 512), ("audio", 128)):
        keys.update(_layer(f"{modality}_encoder.encoder_layer", ["self_attn"]))
        for i in range(2):
            keys.update(_layer(f"{modality}_encoder.encoder.layers.{i}", ["self_attn"]))
        keys.update({f"{modality}_encoder.affine_matrix.weight": (256, dim), f"{modality}_encoder.affine_matrix.bias": (256,)})
        keys.update(_layer(f"{modality}_decoder.decoder_layer", ["self_attn", "multihead_attn"]))
        keys.update(_layer(f"{modality}_decoder.decoder.layers.0", ["self_attn", "multihead_attn"]))
        keys.update({f"{modality}_decoder.affine_matrix.weight": (256, dim), f"{modality}_decoder.affine_matrix.bias": (256,)})
    keys.update(_mha("AVInter.video_multihead"))
    keys.update({"AVInter.norm1.weight": (256,), "AVInter.norm1.bias": (256,)})
    categories = 29 if setting == "weakly" else 28
    keys.update({"localize_module.classifier.weight": (1, 256), "localize_module.classifier.bias": (1,),
                 "localize_module.event_classifier.weight": (categories, 256),
                 "localize_module.event_classifier.bias": (categories,)})
    return {f"module.{key}": shape for key, shape in keys.items()}


def authors_cmran_state(setting: str, seed: int = 3) -> dict[str, torch.Tensor]:
    """A seeded state dict with their keys and shapes (LayerNorm weights near 1)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in authors_cmran_keys(setting).items():
        value = torch.randn(shape, generator=generator) * 0.05
        state[key] = value + 1.0 if ".norm" in key and key.endswith("weight") else value
    return state
