"""AVEL (YapengTian/AVE-ECCV18 ``models.py``/``models_weakly.py``, att_Net(128, 128, 512, 29)), AVSDN
(jasongief/CPSP ``cpsp_avel/model/avsdn.py``, avsdn_net('vgg')) and the CPSP repository's AVEL variant
(``cpsp_avel/model/avel.py``, TBMRF_Net('vgg')) as their authors' files hold them: the key/shape tables
of their state-dicts, and their forward passes in functional ops on those raw tensors (the independent
references of tests/test_models_avel.py, test_models_avsdn.py and test_models_avel_cpsp.py)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from tests._authors_reference import ref_avga, ref_bilstm, ref_bilstm_states


def _lstm_keys(name: str, in_dim: int, hidden: int = 128) -> dict[str, tuple[int, ...]]:
    keys = {}
    for suffix in ("", "_reverse"):
        keys.update({f"{name}.weight_ih_l0{suffix}": (4 * hidden, in_dim), f"{name}.weight_hh_l0{suffix}": (4 * hidden, hidden),
                     f"{name}.bias_ih_l0{suffix}": (4 * hidden,), f"{name}.bias_hh_l0{suffix}": (4 * hidden,)})
    return keys


ATTENTION_KEYS = {"affine_audio.weight": (512, 128), "affine_audio.bias": (512,), "affine_video.weight": (512, 512),
                  "affine_video.bias": (512,), "affine_v.weight": (49, 512), "affine_g.weight": (49, 512),
                  "affine_h.weight": (1, 49)}
# att_Net: registration order of models.py:16-27 (models_weakly.py:13-24 is the same).
AVEL_KEYS = {**_lstm_keys("lstm_audio", 128), **_lstm_keys("lstm_video", 512), **ATTENTION_KEYS,
             "L1.weight": (64, 512), "L1.bias": (64,), "L2.weight": (29, 64), "L2.bias": (29,)}
# avsdn_net('vgg', category_num=28): avsdn.py:19-50, saved through nn.DataParallel ("module." prefix).
AVSDN_KEYS = {**_lstm_keys("lstm_audio", 128), **_lstm_keys("lstm_video", 512), **_lstm_keys("lstm_a_v", 640),
              **ATTENTION_KEYS, "event_classifier.0.weight": (1, 256), "event_classifier.0.bias": (1,),
              "category_classifier.0.weight": (28, 256), "category_classifier.0.bias": (28,),
              **{f"{u}.{k}.{p}": ((128, 128) if p == "weight" else (128,))
                 for u in ("U_v", "U_a") for k in (0, 2) for p in ("weight", "bias")}}


# TBMRF_Net('vgg', category_num=28) of jasongief/CPSP cpsp_avel/model/avel.py:15-57 (DataParallel-saved).
AVEL_CPSP_KEYS = {**_lstm_keys("lstm_audio", 128), **_lstm_keys("lstm_video", 512), **ATTENTION_KEYS,
                  **{f"{u}.{k}.{p}": ((256, 256) if p == "weight" else (256,))
                     for u in ("U_v", "U_a") for k in (0, 2) for p in ("weight", "bias")},
                  "event_classifier.0.weight": (1, 256), "event_classifier.0.bias": (1,),
                  "category_classifier.0.weight": (28, 256), "category_classifier.0.bias": (28,)}


def authors_state(keys: dict[str, tuple[int, ...]], seed: int, prefix: str = "", scale: float = 0.1) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {prefix + key: torch.randn(shape, generator=generator) * scale for key, shape in keys.items()}


def _attended(audio, visual, sd):
    return ref_avga(audio, visual, {"attention." + k: v for k, v in sd.items() if k.startswith("affine_")})


def ref_avel_scores(audio, visual, sd):
    """att_Net up to L2: [B,T,29] (models.py:44-78)."""
    video_t = _attended(audio, visual, sd)
    out = F.relu(torch.cat([ref_bilstm(audio, sd, "lstm_audio"), ref_bilstm(video_t, sd, "lstm_video")], dim=-1))
    return F.linear(F.relu(F.linear(out, sd["L1.weight"], sd["L1.bias"])), sd["L2.weight"], sd["L2.bias"])


def ref_avsdn(audio, visual, sd):
    """avsdn_net.forward (avsdn.py:99-128): event logits [B,T], category logits [B,C], fusion [B,T,256]."""
    video_t = _attended(audio, visual, sd)
    _, (h_v, c_v) = ref_bilstm_states(video_t, sd, "lstm_video")
    _, (h_a, c_a) = ref_bilstm_states(audio, sd, "lstm_audio")

    state = (_tbmrf(F.relu(h_a), F.relu(h_v), sd), _tbmrf(F.relu(c_a), F.relu(c_v), sd))
    return _heads(F.relu(ref_bilstm_states(torch.cat([audio, video_t], dim=-1), sd, "lstm_a_v", state)[0]), sd)


def ref_avel_cpsp(audio, visual, sd):
    """TBMRF_Net.forward (CPSP avel.py:86-143), its permute of the visual input (avel.py:89) included."""
    scrambled = visual.permute(0, 1, 3, 4, 2).reshape(visual.shape[0], visual.shape[1], 7, 7, -1)
    video_t = _attended(audio, scrambled, sd)
    lstm_audio, lstm_video = ref_bilstm(audio, sd, "lstm_audio"), ref_bilstm(video_t, sd, "lstm_video")
    return _heads(F.relu(_tbmrf(lstm_audio, lstm_video, sd)), sd)


def _tbmrf(audio, video, sd):
    """The TBMRF block, one pass (avsdn.py:68-84, avel.py:64-80): residuals cross over."""
    def branch(name, x):
        return F.linear(torch.tanh(F.linear(x, sd[f"{name}.0.weight"], sd[f"{name}.0.bias"])),
                        sd[f"{name}.2.weight"], sd[f"{name}.2.bias"])

    merged = 0.5 * (branch("U_v", video) + branch("U_a", audio))
    return 0.5 * (torch.tanh(audio + merged) + torch.tanh(video + merged))


def _heads(fusion, sd):
    event = F.linear(fusion, sd["event_classifier.0.weight"], sd["event_classifier.0.bias"]).squeeze(-1)
    category = F.linear(fusion.mean(dim=1), sd["category_classifier.0.weight"], sd["category_classifier.0.bias"])
    return event, category, fusion


def soft_margin(probabilities, target):
    """MultiLabelSoftMarginLoss by its definition: mean over rows of mean_c -[y log s(x) + (1-y) log s(-x)]."""
    x, y = probabilities.reshape(-1, probabilities.shape[-1]), target.reshape(-1, target.shape[-1])
    per_row = [-(y[r] * torch.log(torch.sigmoid(x[r])) + (1 - y[r]) * torch.log(torch.sigmoid(-x[r]))).mean()
               for r in range(len(x))]
    return torch.stack(per_row).mean()
