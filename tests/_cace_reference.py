"""CACE-Net from its authors' state-dict, written functionally from their code (CACE/model/main_model.py,
CACE/model/models.py at db43f60) in THEIR layout ([T,B,D] sequences, [B*T,49,D] maps), float64.

``authors_cace_shapes`` is the key/shape table of their ``supv_main_model`` (Co-Guide, contrastive)
as ``torch.save(nn.DataParallel(model).state_dict())`` writes it: 242 tensors, including the
never-run ``encoder_layer``/``decoder_layer`` templates, the decoders' ``self_attn``, ``a_fc``,
``v_norm2`` and ``ave_bottleneck``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

D = 256


def _linear(name, out_dim, in_dim, bias=True):
    return {f"{name}.weight": (out_dim, in_dim), **({f"{name}.bias": (out_dim,)} if bias else {})}


def _norm(name, dim):
    return {f"{name}.weight": (dim,), f"{name}.bias": (dim,)}


def _mha(name, dim):
    return {f"{name}.in_proj_weight": (3 * dim, dim), f"{name}.in_proj_bias": (3 * dim,),
            **_linear(f"{name}.out_proj", dim, dim)}


def _lstm(name, in_dim, hidden):
    shapes = {}
    for suffix in ("", "_reverse"):
        shapes.update({f"{name}.weight_ih_l0{suffix}": (4 * hidden, in_dim), f"{name}.weight_hh_l0{suffix}":
                       (4 * hidden, hidden), f"{name}.bias_ih_l0{suffix}": (4 * hidden,),
                       f"{name}.bias_hh_l0{suffix}": (4 * hidden,)})
    return shapes


def _layer(name, feedforward, decoder):
    shapes = {**_mha(f"{name}.self_attn", D), **(_mha(f"{name}.multihead_attn", D) if decoder else {})}
    return {**shapes, **_linear(f"{name}.linear1", feedforward, D), **_linear(f"{name}.linear2", D, feedforward),
            **_norm(f"{name}.norm1", D), **_norm(f"{name}.norm2", D)}


def _relation(name, input_dim, feedforward, decoder):
    stack, count = ("decoder", 1) if decoder else ("encoder", 2)
    shapes = _layer(f"{name}.{stack}_layer", feedforward, decoder)
    for i in range(count):
        shapes.update(_layer(f"{name}.{stack}.layers.{i}", feedforward, decoder))
    return {**shapes, **_linear(f"{name}.affine_matrix", D, input_dim)}


def authors_cace_shapes() -> dict[str, tuple[int, ...]]:
    att = "spatial_channel_att"
    shapes = {}
    for name, out_dim, in_dim in [
            ("affine_video_1", 512, 512), ("affine_audio_1", 512, 128), ("affine_bottleneck", 256, 512),
            ("affine_v_c_att", 512, 256), ("affine_video_2", 256, 512), ("affine_audio_2", 256, 128),
            ("affine_v_s_att", 1, 256), ("video_query", 128, 512), ("video_key", 128, 512),
            ("video_value", 512, 512), ("v_norm", 512, None), ("video_query2", 128, 512), ("video_key2", 128, 512),
            ("video_value2", 512, 512), ("v_norm2", 512, None), ("affine_video_ave", 256, 512),
            ("affine_video_3", 256, 512), ("ave_bottleneck", 256, 512), ("ave_v_att", 1, 256),
            ("v_query", 128, 512), ("vaudio_key", 128, 128), ("vaudio_value", 128, 128), ("audio_query", 128, 128),
            ("audio_key", 128, 128), ("audio_value", 128, 128), ("a_norm", 128, None)]:
        shapes.update(_norm(f"{att}.{name}", out_dim) if in_dim is None else _linear(f"{att}.{name}", out_dim, in_dim))
    shapes.update({**_linear("v_fc", 512, 512), **_linear("a_fc", 128, 128)})
    shapes.update(_relation("video_encoder", 512, 1024, decoder=False))
    shapes.update(_relation("video_decoder", 512, 512, decoder=True))
    shapes.update(_relation("audio_encoder", D, 1024, decoder=False))
    shapes.update(_relation("audio_decoder", D, 512, decoder=True))
    shapes.update({**_lstm("audio_visual_rnn_layer.audio_rnn", 128, 128),
                   **_lstm("audio_visual_rnn_layer.visual_rnn", 512, 256)})
    shapes.update({**_linear("audio_gated.0", 1, D), **_linear("video_gated.0", 1, D)})
    for inter in ("AVInter", "VAInter"):
        shapes.update({**_mha(f"{inter}.video_multihead", D), **_norm(f"{inter}.norm1", D)})
    shapes.update({**_linear("localize_module.classifier", 1, D), **_linear("localize_module.encoder_q.0", D, D),
                   **_linear("localize_module.event_classifier", 28, D)})
    shapes.update({**_linear("audio_cas", 28, D), **_linear("video_cas", 28, D)})
    return shapes


def authors_cace_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random float64 tensors under the authors' DataParallel keys (``module.`` prefix), weights scaled
    like PyTorch's default initialisation and LayerNorm weights near 1, so activations stay moderate."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in authors_cace_shapes().items():
        values = torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1
        if "norm" in key and key.endswith("weight"):
            values = 1 + 0.1 * values
        elif len(shape) == 2:
            values = values / shape[1] ** 0.5
        else:
            values = values * 0.1
        state["module." + key] = values
    return state


# -- their forward, in their layout -------------------------------------------------------------------------

def _lin(s, name, x):
    return F.linear(x, s[f"{name}.weight"], s[f"{name}.bias"])


def _ln(s, name, x):
    return F.layer_norm(x, x.shape[-1:], s[f"{name}.weight"], s[f"{name}.bias"])


def _attn(s, name, q, k, v, heads):
    """nn.MultiheadAttention in eval mode on [L,B,D] sequences."""
    return F.multi_head_attention_forward(
        q, k, v, q.shape[-1], heads, s[f"{name}.in_proj_weight"], s[f"{name}.in_proj_bias"], None, None, False,
        0.0, s[f"{name}.out_proj.weight"], s[f"{name}.out_proj.bias"], training=False, need_weights=False)[0]


def _ffn(s, name, x, attended):
    x = _ln(s, f"{name}.norm1", x + attended)
    return _ln(s, f"{name}.norm2", x + _lin(s, f"{name}.linear2", torch.relu(_lin(s, f"{name}.linear1", x))))


def _bilstm(s, name, x):
    """[B,T,D] through a one-layer bidirectional LSTM, step by step."""
    def run(suffix, steps):
        hidden = s[f"{name}.weight_hh_l0{suffix}"].shape[1]
        h = x.new_zeros(x.shape[0], hidden)
        c = x.new_zeros(x.shape[0], hidden)
        outputs = {}
        for t in steps:
            gates = (x[:, t] @ s[f"{name}.weight_ih_l0{suffix}"].T + s[f"{name}.bias_ih_l0{suffix}"]
                     + h @ s[f"{name}.weight_hh_l0{suffix}"].T + s[f"{name}.bias_hh_l0{suffix}"])
            i, f, g, o = gates.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outputs[t] = h
        return torch.stack([outputs[t] for t in range(x.shape[1])], dim=1)
    return torch.cat([run("", range(x.shape[1])), run("_reverse", reversed(range(x.shape[1])))], dim=-1)


def _co_guided(s, visual, audio, psai=0.3, beta=0.4):
    """models.py:349-453 (audio arrives [T,B,128] and is transposed back, as theirs)."""
    p = "spatial_channel_att."
    audio = audio.transpose(1, 0)
    batch, steps, h, w, dim = visual.shape
    audio_flat = audio.reshape(batch * steps, -1)
    raw = visual.reshape(batch, steps, -1, dim)

    def self_attention(q, k, v):
        query = _lin(s, p + q, raw).reshape(batch * steps, h * w, -1)
        key = _lin(s, p + k, raw).reshape(batch * steps, h * w, -1).permute(0, 2, 1)
        weights = torch.softmax(torch.bmm(query, key), dim=-1)
        out = weights @ _lin(s, p + v, raw).reshape(batch * steps, h * w, -1)
        return _ln(s, p + "v_norm", raw.reshape(batch * steps, h * w, -1) + out)

    cells = self_attention("video_query", "video_key", "video_value")
    cells2 = self_attention("video_query2", "video_key2", "video_value2")
    average = torch.relu(_lin(s, p + "affine_video_ave", cells.sum(dim=1) / (h * w))).unsqueeze(-2)
    self_query = torch.relu(_lin(s, p + "affine_video_3", cells)) * average
    self_maps = torch.softmax(torch.tanh(_lin(s, p + "ave_v_att", self_query)).transpose(2, 1), dim=-1)
    self_feature = torch.bmm(self_maps, cells).squeeze(1).reshape(batch, steps, dim)
    joint = (torch.relu(_lin(s, p + "affine_audio_1", audio_flat)).unsqueeze(-2)
             * torch.relu(_lin(s, p + "affine_video_1", cells))).mean(-2)
    channel = torch.sigmoid(_lin(s, p + "affine_v_c_att", torch.relu(_lin(s, p + "affine_bottleneck", joint))))
    channel_cells = (raw * (channel.reshape(batch, steps, -1, dim) + 1)).reshape(batch * steps, -1, dim)
    query = (torch.relu(_lin(s, p + "affine_video_2", channel_cells))
             * torch.relu(_lin(s, p + "affine_audio_2", audio_flat)).unsqueeze(-2))
    spatial = torch.softmax(torch.tanh(_lin(s, p + "affine_v_s_att", query)).transpose(2, 1), dim=-1)
    guided = torch.bmm(spatial, channel_cells).squeeze(1).reshape(batch, steps, dim)
    guided = guided + beta * torch.sigmoid(self_feature) * guided
    weights = torch.softmax(torch.bmm(_lin(s, p + "audio_query", audio),
                                      _lin(s, p + "audio_key", audio).permute(0, 2, 1)), dim=-1)
    context = _ln(s, p + "a_norm", audio + weights @ _lin(s, p + "audio_value", audio))
    picture = _lin(s, p + "v_query", cells2.sum(dim=1).reshape(batch, steps, dim) / (h * w))
    segment = torch.softmax(torch.bmm(picture, _lin(s, p + "vaudio_key", context).permute(0, 2, 1)), dim=-1)
    guide = segment @ _lin(s, p + "vaudio_value", context)
    audio = audio + psai * torch.sigmoid(guide) * audio
    maps = {"audio_guided_spatial": spatial.reshape(batch, steps, h, w),
            "visual_self_spatial": self_maps.reshape(batch, steps, h, w), "visual_guided_audio": segment}
    return guided, audio, maps


def _encoder(s, name, x):
    x = _lin(s, f"{name}.affine_matrix", x)
    for i in range(2):
        layer = f"{name}.encoder.layers.{i}"
        x = _ffn(s, layer, x, _attn(s, f"{layer}.self_attn", x, x, x, 4))
    return x


def _decoder(s, name, x, memory):
    x = _lin(s, f"{name}.affine_matrix", x)
    layer = f"{name}.decoder.layers.0"
    memory = torch.cat([memory, x], dim=0)
    return _ffn(s, layer, x, _attn(s, f"{layer}.multihead_attn", x, memory, memory, 4))


def _inter(s, name, video, audio):
    product = video * audio
    memory = torch.cat([audio, video], dim=0)
    return _ln(s, f"{name}.norm1", product + _attn(s, f"{name}.video_multihead", product, memory, memory, 4))


def _top4(cas):
    return cas.sort(descending=True, dim=1)[0][:, :4].mean(dim=1)


def authors_forward(state, audio, visual, switch: bool, lambda_: float = 0.6, alpha: float = 0.1,
                    gamma: float = 0.3) -> dict[str, torch.Tensor]:
    """main_model.py:482-549 in eval mode: is_event [B,T], event_scores [B,28], the gate [B,T], av_score,
    the contrastive query [B,T,D], the fused features [B,T,D] and the co-guidance maps."""
    s = {k.removeprefix("module."): v for k, v in state.items()}
    audio = audio.transpose(1, 0)
    visual = torch.relu(_lin(s, "v_fc", visual))
    visual, audio_in, maps = _co_guided(s, visual, audio)
    audio_seq = _bilstm(s, "audio_visual_rnn_layer.audio_rnn", audio_in).transpose(1, 0)
    visual_seq = _bilstm(s, "audio_visual_rnn_layer.visual_rnn", visual).transpose(1, 0)
    video_memory = _encoder(s, "video_encoder", visual_seq)
    audio_query = _decoder(s, "audio_decoder", audio_seq, video_memory)
    audio_memory = _encoder(s, "audio_encoder", audio_seq)
    video_query = _decoder(s, "video_decoder", visual_seq, audio_memory)
    audio_gate = torch.sigmoid(_lin(s, "audio_gated.0", audio_memory))
    video_gate = torch.sigmoid(_lin(s, "video_gated.0", video_memory))
    video_query = video_query + audio_gate * video_query * alpha
    audio_query = audio_query + video_gate * audio_query * alpha
    av_score = (_top4(_lin(s, "video_cas", video_query).permute(1, 0, 2))
                + _top4(_lin(s, "audio_cas", audio_query).permute(1, 0, 2))) / 2
    video_query = _inter(s, "AVInter", video_query, audio_query)
    audio_query = _inter(s, "VAInter", audio_query, video_query)
    fused = (video_query + audio_query) / 2
    projected = torch.relu(_lin(s, "localize_module.encoder_q.0", fused))
    content = fused + lambda_ * projected if switch else fused
    category = _lin(s, "localize_module.event_classifier", fused.max(dim=0)[0]) + gamma * av_score
    return {"is_event": _lin(s, "localize_module.classifier", content).squeeze(-1).transpose(1, 0),
            "event_scores": category, "gate": (audio_gate * video_gate).squeeze(-1).transpose(1, 0),
            "av_score": av_score, "query": F.normalize(projected, dim=2).transpose(1, 0),
            "fused": fused.transpose(1, 0), **maps}
