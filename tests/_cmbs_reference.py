"""The CMBS authors' state-dict layout (key table) and a functional re-implementation of their forward pass.

The table is written from marmot-xy/CMBS model/main_model.py and model/models.py (commit 48e1ffc): every
key their ``supv_main_model`` / ``weak_main_model`` saves, including the template ``encoder_layer`` /
``decoder_layer`` and the decoder self-attention their forward never calls. The forward below works
from that dict alone, in loops and explicit formulas (attention heads, LSTM gates), in the layout of
their code ([T,B,d] through the temporal part); it shares nothing with avepipe.models.cmbs.
"""
from __future__ import annotations

import math

import torch

D = 256
SETTINGS = {"fully": {"alpha": 0.1, "gamma": 0.3, "beta": 0.4, "heads": 4, "ff_encoder": 1024},
            "weakly": {"alpha": 0.2, "gamma": 0.5, "beta": 0.5, "heads": 2, "ff_encoder": 2048}}


def _linear(out_dim, in_dim, bias=True):
    return {"weight": (out_dim, in_dim), **({"bias": (out_dim,)} if bias else {})}


def _norm(dim=D):
    return {"weight": (dim,), "bias": (dim,)}


def _mha(dim=D):
    return {"in_proj_weight": (3 * dim, dim), "in_proj_bias": (3 * dim,),
            "out_proj.weight": (dim, dim), "out_proj.bias": (dim,)}


def _nest(prefix, table):
    return {f"{prefix}.{k}": v for k, v in table.items()}


def _transformer_layer(ff, decoder):
    table = {**_nest("self_attn", _mha()), **_nest("linear1", _linear(ff, D)), **_nest("linear2", _linear(D, ff)),
             **_nest("norm1", _norm()), **_nest("norm2", _norm())}
    return {**table, **_nest("multihead_attn", _mha())} if decoder else table


def _relation(input_dim, ff, decoder):
    """InternalTemporalRelationModule (2 encoder layers) or CrossModalRelationAttModule (1 decoder layer),
    each with the template layer it was cloned from."""
    layer = _transformer_layer(ff, decoder)
    name, count = ("decoder", 1) if decoder else ("encoder", 2)
    table = {**_nest(f"{name}_layer", layer), **_nest("affine_matrix", _linear(D, input_dim))}
    for i in range(count):
        table.update(_nest(f"{name}.layers.{i}", layer))
    return table


def _lstm(input_dim, hidden):
    table = {}
    for suffix in ("", "_reverse"):
        table.update({f"weight_ih_l0{suffix}": (4 * hidden, input_dim), f"weight_hh_l0{suffix}": (4 * hidden, hidden),
                      f"bias_ih_l0{suffix}": (4 * hidden,), f"bias_hh_l0{suffix}": (4 * hidden,)})
    return table


ATTENTION = {**{name: _linear(*shape) for name, shape in {
    "affine_video_1": (512, 512), "affine_audio_1": (512, 128), "affine_bottleneck": (256, 512),
    "affine_v_c_att": (512, 256), "affine_video_2": (256, 512), "affine_audio_2": (256, 128),
    "affine_v_s_att": (1, 256), "video_query": (128, 512), "video_key": (128, 512), "video_value": (512, 512),
    "affine_video_ave": (256, 512), "affine_video_3": (256, 512), "ave_bottleneck": (256, 512),
    "ave_v_att": (1, 256)}.items()}, "norm": _norm(512)}


def authors_table(setting: str) -> dict[str, tuple[int, ...]]:
    """Every key and shape their saved state-dict has (without DataParallel's ``module.``)."""
    classes = 28 if setting == "fully" else 29
    ff = SETTINGS[setting]["ff_encoder"]
    audio_in = D if setting == "fully" else 128
    table = {**{f"spatial_channel_att.{k}": v for sub, t in ATTENTION.items() for k, v in _nest(sub, t).items()},
             **_nest("v_fc", _linear(512, 512)),
             **_nest("video_encoder", _relation(512, ff, False)), **_nest("video_decoder", _relation(512, 1024, True)),
             **_nest("audio_encoder", _relation(audio_in, ff, False)),
             **_nest("audio_decoder", _relation(audio_in, 1024, True)),
             **_nest("audio_gated.0", _linear(1, D)), **_nest("video_gated.0", _linear(1, D)),
             **_nest("AVInter", {**_nest("video_multihead", _mha()), **_nest("norm1", _norm())}),
             **_nest("VAInter", {**_nest("video_multihead", _mha()), **_nest("norm1", _norm())}),
             **_nest("audio_cas", _linear(classes, D)), **_nest("video_cas", _linear(classes, D))}
    if setting == "fully":
        table.update({**_nest("audio_visual_rnn_layer.audio_rnn", _lstm(128, 128)),
                      **_nest("audio_visual_rnn_layer.visual_rnn", _lstm(512, 256)),
                      **_nest("localize_module.classifier", _linear(1, D)),
                      **_nest("localize_module.event_classifier", _linear(28, D)),
                      **_nest("video_norm", _norm()), **_nest("audio_norm", _norm())})
    else:
        table.update({"CAS_model.classifier.0.weight": (29, D, 1), **_nest("classifier", _linear(1, D))})
    return table


def authors_cmbs_state(setting: str, seed: int = 0, prefix: str = "module.") -> dict[str, torch.Tensor]:
    """Random float64 tensors under exactly their keys (``prefix`` as DataParallel saves them)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in authors_table(setting).items():
        value = torch.randn(shape, generator=generator, dtype=torch.float64)
        is_norm_weight = ("norm" in key.rsplit(".", 2)[-2]) and key.endswith("weight") and len(shape) == 1
        state[prefix + key] = 1.0 + 0.1 * value if is_norm_weight else value / math.sqrt(shape[-1] if len(shape) > 1
                                                                                         else 64)
    return state


# -- the forward pass ---------------------------------------------------------------------------------
def _lin(x, s, name):
    y = x @ s[name + ".weight"].T
    return y + s[name + ".bias"] if name + ".bias" in s else y


def _layer_norm(x, s, name):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-5) * s[name + ".weight"] + s[name + ".bias"]


def _attention(query, key, s, name, heads):
    """Multi-head attention, [L,B,d] inputs; returns the output and the head-averaged weights [B,L,S]."""
    w, b = s[name + ".in_proj_weight"], s[name + ".in_proj_bias"]
    q, k, v = (x @ w[i * D:(i + 1) * D].T + b[i * D:(i + 1) * D] for i, x in enumerate((query, key, key)))
    size = D // heads
    split = lambda x: x.reshape(x.shape[0], x.shape[1], heads, size).permute(1, 2, 0, 3)    # [B,h,L,size]
    weights = torch.softmax(split(q) @ split(k).transpose(-1, -2) / math.sqrt(size), dim=-1)
    out = (weights @ split(v)).permute(2, 0, 1, 3).reshape(query.shape[0], query.shape[1], D)
    return _lin(out, s, name + ".out_proj"), weights.mean(dim=1)


def _feed_forward(x, s, name):
    return _lin(torch.relu(_lin(x, s, name + ".linear1")), s, name + ".linear2")


def _encoder(x, s, name, heads=4):
    x = _lin(x, s, name + ".affine_matrix")
    for i in range(2):
        layer = f"{name}.encoder.layers.{i}"
        x = _layer_norm(x + _attention(x, x, s, layer + ".self_attn", heads)[0], s, layer + ".norm1")
        x = _layer_norm(x + _feed_forward(x, s, layer), s, layer + ".norm2")
    return x


def _decoder(query, memory, s, name, heads=4):
    layer = f"{name}.decoder.layers.0"
    query = _lin(query, s, name + ".affine_matrix")
    attended, weights = _attention(query, torch.cat([memory, query]), s, layer + ".multihead_attn", heads)
    query = _layer_norm(query + attended, s, layer + ".norm1")
    return _layer_norm(query + _feed_forward(query, s, layer), s, layer + ".norm2"), weights


def _lstm_direction(x, s, name, suffix, reverse):
    hidden = s[f"{name}.weight_hh_l0{suffix}"].shape[1]
    h = x.new_zeros(x.shape[0], hidden)
    c = x.new_zeros(x.shape[0], hidden)
    outputs = [None] * x.shape[1]
    for t in (reversed(range(x.shape[1])) if reverse else range(x.shape[1])):
        z = (x[:, t] @ s[f"{name}.weight_ih_l0{suffix}"].T + s[f"{name}.bias_ih_l0{suffix}"]
             + h @ s[f"{name}.weight_hh_l0{suffix}"].T + s[f"{name}.bias_hh_l0{suffix}"])
        i, f, g, o = z.split(hidden, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outputs[t] = h
    return torch.stack(outputs, dim=1)


def _bilstm(x, s, name):
    return torch.cat([_lstm_direction(x, s, name, "", False), _lstm_direction(x, s, name, "_reverse", True)], -1)


def _spatial_channel_attention(visual, audio, s, beta):
    """visual [B,T,7,7,512] after v_fc, audio [B,T,128] -> [B,T,512] and the audio-guided map [B,T,49]."""
    p = "spatial_channel_att."
    B, T = visual.shape[:2]
    cells = visual.reshape(B, T, 49, 512)
    q, k = _lin(cells, s, p + "video_query"), _lin(cells, s, p + "video_key")
    self_out = torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ _lin(cells, s, p + "video_value")
    attended = _layer_norm(cells + self_out, s, p + "norm")
    average = torch.relu(_lin(attended.mean(dim=2), s, p + "affine_video_ave"))[:, :, None]
    self_scores = _lin(torch.relu(_lin(attended, s, p + "affine_video_3")) * average, s, p + "ave_v_att")
    self_map = torch.softmax(torch.tanh(self_scores[..., 0]), dim=-1)
    self_feature = (self_map[..., None] * attended).sum(dim=2)
    joint = (torch.relu(_lin(audio, s, p + "affine_audio_1"))[:, :, None]
             * torch.relu(_lin(attended, s, p + "affine_video_1"))).mean(dim=2)
    channel = torch.sigmoid(_lin(torch.relu(_lin(joint, s, p + "affine_bottleneck")), s, p + "affine_v_c_att"))
    channelled = cells * (channel[:, :, None] + 1)
    query = torch.relu(_lin(channelled, s, p + "affine_video_2")) * torch.relu(_lin(audio, s, p + "affine_audio_2"))[:, :, None]
    spatial = torch.softmax(torch.tanh(_lin(query, s, p + "affine_v_s_att")[..., 0]), dim=-1)
    feature = (spatial[..., None] * channelled).sum(dim=2)
    return feature + beta * torch.sigmoid(self_feature) * feature, spatial


def _top4_mean(scores):
    """[B,T,K] -> [B,K]: mean of each class's 4 highest segment scores."""
    return scores.sort(dim=1, descending=True).values[:, :4].mean(dim=1)


def _interact(video, audio, s, heads):
    def block(name, v, a):
        joint = v * a
        return _layer_norm(joint + _attention(joint, torch.cat([a, v]), s, name + ".video_multihead", heads)[0], s,
                           name + ".norm1")
    video = block("AVInter", video, audio)
    audio = block("VAInter", audio, video)
    return ((video + audio) / 2).transpose(0, 1)


def reference_forward(state: dict[str, torch.Tensor], setting: str, audio: torch.Tensor, visual: torch.Tensor) -> dict:
    """Eval-mode forward of their model from their state-dict (no ``module.`` prefix)."""
    s = state
    cfg = SETTINGS[setting]
    visual, spatial = _spatial_channel_attention(torch.relu(_lin(visual, s, "v_fc")), audio, s, cfg["beta"])
    if setting == "fully":
        audio = _bilstm(audio, s, "audio_visual_rnn_layer.audio_rnn")
        visual = _bilstm(visual, s, "audio_visual_rnn_layer.visual_rnn")
    audio, visual = audio.transpose(0, 1), visual.transpose(0, 1)
    video_key = _encoder(visual, s, "video_encoder")
    audio_query, audio_on_visual = _decoder(audio, video_key, s, "audio_decoder")
    audio_key = _encoder(audio, s, "audio_encoder")
    video_query, visual_on_audio = _decoder(visual, audio_key, s, "video_decoder")
    result = {"spatial": spatial.reshape(*spatial.shape[:2], 7, 7), "audio_on_visual": audio_on_visual[..., :len(audio)],
              "visual_on_audio": visual_on_audio[..., :len(audio)]}
    alpha, gamma = cfg["alpha"], cfg["gamma"]
    if setting == "fully":
        audio_gate = torch.sigmoid(_lin(audio_key, s, "audio_gated.0"))
        video_gate = torch.sigmoid(_lin(video_key, s, "video_gated.0"))
        video_query = video_query * (1 + alpha * audio_gate)
        audio_query = audio_query * (1 + alpha * video_gate)
        cas = (_top4_mean(_lin(video_query, s, "video_cas").transpose(0, 1))
               + _top4_mean(_lin(audio_query, s, "audio_cas").transpose(0, 1))) / 2
        fused = _interact(video_query, audio_query, s, cfg["heads"])
        event = _lin(fused, s, "localize_module.classifier")[..., 0]
        category = _lin(fused.max(dim=1).values, s, "localize_module.event_classifier") + gamma * cas
        return {**result, "event_logits": event, "category_logits": category, "cas": cas,
                "gate": (audio_gate * video_gate)[..., 0].T}
    audio_gate = torch.sigmoid(_lin(video_key, s, "audio_gated.0"))
    video_gate = torch.sigmoid(_lin(audio_key, s, "video_gated.0"))
    video_query = video_query * (1 - alpha + alpha * audio_gate)
    audio_query = audio_query * (1 - alpha + alpha * video_gate)
    class_gates = (torch.sigmoid(_lin(video_query, s, "video_cas")) + torch.sigmoid(_lin(audio_query, s, "audio_cas")))
    fused = _interact(video_query, audio_query, s, cfg["heads"])
    cas = gamma * class_gates.transpose(0, 1) * (fused @ s["CAS_model.classifier.0.weight"][..., 0].T)
    video_logits = _top4_mean(cas)
    gate = ((audio_gate + video_gate) / 2)[..., 0].T
    video_prob = torch.softmax((gate[..., None] * video_logits[:, None]).max(dim=1).values, dim=-1)
    return {**result, "gate": gate, "video_logits": video_logits, "video_prob": video_prob}
