"""The authors' forward pass written with torch functional ops on their raw state-dict tensors, from the
spec's equations: the independent reference that our networks (and imported checkpoints) are checked against."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _lstm_direction(x, sd, prefix, suffix, h=None, c=None):
    """One direction from state (h, c) (zeros if None): its outputs [B,T,H] and its final (h, c)."""
    w_ih, w_hh = sd[f"{prefix}.weight_ih_l0{suffix}"], sd[f"{prefix}.weight_hh_l0{suffix}"]
    bias = sd[f"{prefix}.bias_ih_l0{suffix}"] + sd[f"{prefix}.bias_hh_l0{suffix}"]
    h = x.new_zeros(x.shape[0], w_hh.shape[1]) if h is None else h
    c = torch.zeros_like(h) if c is None else c
    outputs = []
    for t in range(x.shape[1]):
        i, f, g, o = (x[:, t] @ w_ih.T + h @ w_hh.T + bias).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outputs.append(h)
    return torch.stack(outputs, dim=1), (h, c)


def ref_bilstm_states(x, sd, prefix, state=None):
    """A Bi-LSTM from ``state`` = (h0, c0) [2,B,H] (zeros if None): outputs [B,T,2H] and (h_n, c_n) [2,B,H]."""
    h0, c0 = state if state is not None else ((None, None), (None, None))
    forward, (h_f, c_f) = _lstm_direction(x, sd, prefix, "", h0[0], c0[0])
    backward, (h_b, c_b) = _lstm_direction(x.flip(1), sd, prefix, "_reverse", h0[1], c0[1])
    return torch.cat([forward, backward.flip(1)], dim=-1), (torch.stack([h_f, h_b]), torch.stack([c_f, c_b]))


def ref_bilstm(x, sd, prefix):
    return ref_bilstm_states(x, sd, prefix)[0]


def ref_avga(audio, video, sd):
    v_t = video.reshape(video.shape[0] * video.shape[1], -1, 512)
    V = v_t
    v_t = F.relu(F.linear(v_t, sd["attention.affine_video.weight"], sd["attention.affine_video.bias"]))
    a_t = F.relu(F.linear(audio.reshape(-1, audio.shape[-1]), sd["attention.affine_audio.weight"],
                          sd["attention.affine_audio.bias"]))
    content = F.linear(v_t, sd["attention.affine_v.weight"]) + F.linear(a_t, sd["attention.affine_g.weight"]).unsqueeze(2)
    z = F.linear(torch.tanh(content), sd["attention.affine_h.weight"]).squeeze(2)
    alpha = F.softmax(z, dim=-1).unsqueeze(1)
    return torch.bmm(alpha, V).reshape(video.shape[0], video.shape[1], 512)


def ref_psp(a_fea, v_fea, sd, tau, fully):
    def branch(name, x):
        return F.relu(F.linear(x, sd[f"psp.{name}.weight"]))

    v1, v2, a1, a2 = branch("v_L1", v_fea), branch("v_L2", v_fea), branch("a_L1", a_fea), branch("a_L2", a_fea)
    va = F.relu(torch.bmm(v2, a1.permute(0, 2, 1)) / math.sqrt(v2.shape[2]))
    av = va.permute(0, 2, 1)
    va = va / (va.sum(-1, keepdim=True) + 1e-8)
    va = (va > tau).float() * va
    av = av / (av.sum(-1, keepdim=True) + 1e-8)
    av = (av > tau).float() * av
    if fully:
        va = va / (va.sum(-1, keepdim=True) + 1e-8)
        av = av / (av.sum(-1, keepdim=True) + 1e-8)
    v_psp = v_fea + torch.bmm(va, a2)
    a_psp = a_fea + torch.bmm(av, v1)
    if fully:
        v_psp, a_psp = branch("v_fc", v_psp), branch("a_fc", a_psp)
    ln = lambda x: F.layer_norm(x, (256,), sd["psp.layer_norm.weight"], sd["psp.layer_norm.bias"], eps=1e-6)  # noqa: E731
    v_f, a_f = ln(v_psp), ln(a_psp)
    return (v_f + a_f) * 0.5, v_f, a_f


def ref_fully_encoder(audio, video, sd, tau):
    """fa -> AVGA -> fv -> Bi-LSTMs -> PSP: (fusion, v_f, a_f), shared by fully PSP and CPSP."""
    fa = F.linear(F.linear(audio, sd["fa.0.weight"]), sd["fa.1.weight"])
    video_t = ref_avga(fa, video, sd)
    video_t = F.linear(F.linear(video_t, sd["fv.0.weight"]), sd["fv.1.weight"])
    a_l, v_l = ref_bilstm(fa, sd, "lstm_a_v.lstm_audio"), ref_bilstm(video_t, sd, "lstm_a_v.lstm_video")
    return ref_psp(a_l, v_l, sd, tau, fully=True)


def ref_fully(audio, video, sd, tau):
    fusion, v_f, a_f = ref_fully_encoder(audio, video, sd, tau)
    similarity = (F.normalize(v_f, dim=-1) * F.normalize(a_f, dim=-1)).sum(-1)
    logits = F.linear(F.relu(F.linear(fusion, sd["L1.weight"])), sd["L2.weight"])
    return fusion, logits, similarity


def ref_weakly(audio, video, sd, tau):
    video_t = F.linear(ref_avga(audio, video, sd), sd["linear_v.weight"], sd["linear_v.bias"])
    a_l, v_l = ref_bilstm(audio, sd, "lstm_a_v.lstm_audio"), ref_bilstm(video_t, sd, "lstm_a_v.lstm_video")
    fusion, _, _ = ref_psp(a_l, v_l, sd, tau, fully=False)
    score = F.linear(F.relu(F.linear(fusion, sd["L1.weight"])), sd["L2.weight"])
    score = score * torch.sigmoid(F.relu(F.linear(score, sd["W3.weight"])))
    return F.softmax(score.mean(dim=1), dim=-1), score


_LSTM = {f"{kind}_{part}_l0{suffix}": (512, 128) if kind == "weight" else (512,)
         for kind in ("weight", "bias") for part in ("ih", "hh") for suffix in ("", "_reverse")}
# fully_psp_net and weakly_psp_net (VGG features) of the CPSP authors' psp_family.py have the same parameters:
# every one, by their names and shapes (28 classes)
AUTHORS_CPSP_KEYS = {
    "fa.0.weight": (256, 128), "fa.1.weight": (128, 256), "fv.0.weight": (256, 512), "fv.1.weight": (128, 256),
    "linear_v.weight": (128, 512), "linear_v.bias": (128,),
    "attention.affine_audio.weight": (512, 128), "attention.affine_audio.bias": (512,),
    "attention.affine_video.weight": (512, 512), "attention.affine_video.bias": (512,),
    "attention.affine_v.weight": (49, 512), "attention.affine_g.weight": (49, 512),
    "attention.affine_h.weight": (1, 49),
    **{f"lstm_a_v.lstm_{m}.{k}": s for m in ("audio", "video") for k, s in _LSTM.items()},
    **{f"psp.{name}.weight": (256, 256) for name in ("v_L1", "v_L2", "v_fc", "a_L1", "a_L2", "a_fc")},
    "psp.layer_norm.weight": (256,), "psp.layer_norm.bias": (256,),
    "v_classify.L1.weight": (64, 256), "v_classify.L2.weight": (28, 64),
    "a_classify.L1.weight": (64, 256), "a_classify.L2.weight": (28, 64),
    "L1.weight": (64, 256), "L2.weight": (28, 64),
    "event_classifier.0.weight": (1, 256), "event_classifier.0.bias": (1,),
    "category_classifier.0.weight": (28, 256), "category_classifier.0.bias": (28,),
}


def authors_cpsp_state(seed: int = 11) -> dict[str, torch.Tensor]:
    """A seeded state dict with every key and shape of their CPSP network."""
    generator = torch.Generator().manual_seed(seed)
    return {key: torch.randn(shape, generator=generator) * 0.1 + (1.0 if key == "psp.layer_norm.weight" else 0.0)
            for key, shape in AUTHORS_CPSP_KEYS.items()}
