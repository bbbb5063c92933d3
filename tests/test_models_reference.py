"""Independent reference: the spec's equations written with torch functional ops on the raw
state-dict tensors (the way the authors' code computes them). Loading the same weights into our
networks must give the same outputs (this is the "imported authors' weights give their outputs" check)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from avepipe import models


def _lstm_direction(x, sd, prefix, suffix):
    w_ih, w_hh = sd[f"{prefix}.weight_ih_l0{suffix}"], sd[f"{prefix}.weight_hh_l0{suffix}"]
    bias = sd[f"{prefix}.bias_ih_l0{suffix}"] + sd[f"{prefix}.bias_hh_l0{suffix}"]
    h = x.new_zeros(x.shape[0], w_hh.shape[1])
    c = torch.zeros_like(h)
    outputs = []
    for t in range(x.shape[1]):
        i, f, g, o = (x[:, t] @ w_ih.T + h @ w_hh.T + bias).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outputs.append(h)
    return torch.stack(outputs, dim=1)


def ref_bilstm(x, sd, prefix):
    forward = _lstm_direction(x, sd, prefix, "")
    backward = _lstm_direction(x.flip(1), sd, prefix, "_reverse").flip(1)
    return torch.cat([forward, backward], dim=-1)


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


def ref_fully(audio, video, sd, tau):
    fa = F.linear(F.linear(audio, sd["fa.0.weight"]), sd["fa.1.weight"])
    video_t = ref_avga(fa, video, sd)
    video_t = F.linear(F.linear(video_t, sd["fv.0.weight"]), sd["fv.1.weight"])
    a_l, v_l = ref_bilstm(fa, sd, "lstm_a_v.lstm_audio"), ref_bilstm(video_t, sd, "lstm_a_v.lstm_video")
    fusion, v_f, a_f = ref_psp(a_l, v_l, sd, tau, fully=True)
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


def _random_weights(net, seed):
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(t.shape, generator=generator) * 0.1 + (1.0 if name.endswith("layer_norm.weight") else 0)
            for name, t in net.state_dict().items()}


def _net_and_inputs(setting: str, tau: float, weight_seed: int, input_seed: int, segments: int):
    """A network in eval mode with seeded random weights (also returned) and seeded inputs."""
    net = models.build_model("psp", setting, tau=tau)
    sd = _random_weights(net, weight_seed)
    net.load_state_dict(sd)
    net.eval()
    generator = torch.Generator().manual_seed(input_seed)
    audio = torch.randn(2, segments, 128, generator=generator)
    video = torch.rand(2, segments, 7, 7, 512, generator=generator)
    return net, sd, audio, video


@pytest.mark.parametrize("tau", [0.099, float("-inf")])
@pytest.mark.parametrize("segments", [10, 37])
def test_fully_matches_functional_reference(tau, segments):
    net, sd, audio, video = _net_and_inputs("fully", tau, 1, 2, segments)
    with torch.no_grad():
        out = net(audio, video)
        fusion, logits, similarity = ref_fully(audio, video, sd, tau)
    assert (out.fusion - fusion).abs().max() < 1e-5
    assert (out.logits - logits).abs().max() < 1e-5
    assert (out.similarity - similarity).abs().max() < 1e-5


@pytest.mark.parametrize("segments", [10, 37])
def test_weakly_matches_functional_reference(segments):
    net, sd, audio, video = _net_and_inputs("weakly", 0.095, 3, 4, segments)
    with torch.no_grad():
        out = net(audio, video)
        video_prob, score = ref_weakly(audio, video, sd, 0.095)
    assert (out.video_prob - video_prob).abs().max() < 1e-5
    assert (out.logits - score).abs().max() < 1e-5

