"""Generated features with a known audio-visual structure, for the training and evaluation tests.

Each class k has a visual prototype (a 512-d pool5-like vector placed at one of
the 7x7 positions) and an audio prototype (128-d). A segment is an event of the
video's class c only where the visible object AND the audible sound are both c;
the background segments show c alone, hear c alone, see/hear a mismatched pair,
or nothing - so neither modality alone gives the label.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from extract.cache_writer import CacheWriter
from extract.features import VideoFeatures
from extract.provenance import ExtractorConfig

T = 10
NONE = -1


class TensorFeatures(torch.utils.data.Dataset):
    """The FeatureDataset item contract over in-memory arrays (no cache on disk)."""

    def __init__(self, audio, visual, segment_labels, video_labels):
        self.audio = torch.as_tensor(audio, dtype=torch.float32)
        self.visual = torch.as_tensor(visual, dtype=torch.float32)
        self.segment_labels = torch.as_tensor(segment_labels, dtype=torch.int64)
        self.video_labels = torch.as_tensor(video_labels, dtype=torch.float32)

    def __len__(self):
        return len(self.audio)

    def __getitems__(self, indices):
        idx = torch.as_tensor(indices, dtype=torch.int64)
        return {"audio": self.audio[idx], "visual": self.visual[idx], "segment_labels": self.segment_labels[idx],
                "video_label": self.video_labels[idx], "index": idx}


class Prototypes:
    def __init__(self, classes: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.classes = classes
        self.visual = rng.normal(0, 1, (classes, 512)).astype(np.float32)
        self.audio = rng.normal(0, 1, (classes, 128)).astype(np.float32)


def _segment_plan(rng, c: int, classes: int, asynchronous: bool, event: bool = True):
    """Per-segment (visible class, audible class, label) for one video of class c (no event: all background)."""
    background = classes
    start = int(rng.integers(0, 6))
    end = int(rng.integers(start + 2, min(T, start + 6) + 1)) if event else start
    others = [k for k in range(classes) if k != c]
    vis = np.full(T, NONE)
    aud = np.full(T, NONE)
    label = np.full(T, background)
    for t in range(T):
        if start <= t < end:
            vis[t], aud[t], label[t] = c, c, c
            continue
        kind = rng.integers(0, 5)
        if kind == 1:
            vis[t] = c                                      # silent object
        elif kind == 2:
            aud[t] = c                                      # off-screen sound
        elif kind == 3:
            vis[t], aud[t] = c, rng.choice(others)          # mismatched pair
        elif kind == 4:
            vis[t], aud[t] = rng.choice(others), c
    if asynchronous:
        # During the visible event only a generic sound is heard; which class sounds is
        # audible only off-screen, in other segments. The pair is an event only when that
        # off-screen sound is c, so the label needs audio from other seconds.
        heard = c if rng.random() < 0.5 else int(rng.choice(others))
        inside = (label == c)
        aud = np.where(inside, classes, NONE)
        vis = np.where(inside, c, np.where(rng.random(T) < 0.3, c, NONE))
        outside = np.flatnonzero(~inside)
        aud[rng.choice(outside, size=min(2, len(outside)), replace=False)] = heard
        vis[aud == heard] = NONE
        if heard != c:
            label[:] = background
    return vis, aud, label


def make_videos(n: int, classes: int = 4, seed: int = 0, asynchronous: bool = False,
                noise: float = 0.3, protos: Prototypes | None = None, background_share: float = 0.0):
    """audio [n,T,128], visual [n,T,7,7,512], segment labels [n,T], video labels [n,C+1].

    ``background_share`` of the videos have no event at all (the weakly setting needs
    them, like AVE's 178 background videos: otherwise background never appears in a video label).
    """
    protos = protos or Prototypes(classes)
    rng = np.random.default_rng(seed + 1000)
    generic_sound = np.random.default_rng(99).normal(0, 1, 128).astype(np.float32)
    audio = rng.normal(0, noise, (n, T, 128)).astype(np.float32)
    visual = np.abs(rng.normal(0, noise, (n, T, 49, 512))).astype(np.float32)
    seg = np.zeros((n, T), np.int64)
    vid = np.zeros((n, classes + 1), np.float32)
    for i in range(n):
        c = int(rng.integers(0, classes))
        has_event = background_share == 0 or rng.random() >= background_share
        vis, aud, seg[i] = _segment_plan(rng, c, classes, asynchronous, event=has_event)
        vid[i, c if (seg[i] == c).any() else classes] = 1.0
        for t in range(T):
            if vis[t] != NONE:
                visual[i, t, rng.integers(0, 49)] += 5.0 * np.abs(protos.visual[vis[t]])
            if aud[t] == classes:
                audio[i, t] += 2.0 * generic_sound
            elif aud[t] != NONE:
                audio[i, t] += 2.0 * protos.audio[aud[t]]
    return audio, visual.reshape(n, T, 7, 7, 512), seg, vid


def tensor_splits(train: int, val: int, classes: int = 4, asynchronous: bool = False, seed: int = 0,
                  background_share: float = 0.0):
    protos = Prototypes(classes, seed)
    return tuple(TensorFeatures(*make_videos(n, classes, seed + k, asynchronous, protos=protos,
                                             background_share=background_share))
                 for k, n in ((1, train), (2, val)))


def write_cache(path: Path, ids, audio, visual, config: ExtractorConfig | None = None, dtype: str = "float32"):
    config = config or ExtractorConfig(segments=T)
    with CacheWriter(path, config, dtype=dtype) as writer:
        for vid, a, v in zip(ids, audio, visual):
            writer.write(VideoFeatures(vid, v, a, duration=float(len(a)), source_fps=16.0, has_audio=True))
    return path
