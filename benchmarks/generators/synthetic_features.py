"""Generated features with a known audio-visual structure, for the training tests and the PSP ablation benchmark.

Each class k has a visual prototype (a 512-d pool5-like vector added over a 3x3
block of the 7x7 map, as an object spans several pool5 cells) and an audio
prototype (128-d). A segment is an event of the video's class c only where the
visible object AND the audible sound are both c; the background segments show c
alone, hear c alone, see/hear a mismatched pair, or nothing - so neither modality
alone gives the label.

In the asynchronous variant the object of class c is seen, silent, during the event
window, and the class that sounds is heard only in two other seconds: the window is
an event only when that sound is c, so a segment's label needs another second's audio.

Why a block and not one cell: with the object on a single cell, AVGA's attention learnt
to avoid it from some initialisations (median attention on the object 0.004 in a stalled
run, 0.48 in a good one), and the stalled models called heard-but-unseen sounds events:
5 of 11 fully supervised runs of the learning test's schedule ended below 95%, against 0
of 10 with the block.
"""
from __future__ import annotations

import numpy as np
import torch

T = 10
NONE = -1
GRID = 7                # pool5 maps are 7x7
OBJECT_CELLS = 3        # the object covers a 3x3 block of them


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
    """One visual (512-d) and one audio (128-d) prototype per class; share them between splits."""

    def __init__(self, classes: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.classes = classes
        self.visual = rng.normal(0, 1, (classes, 512)).astype(np.float32)
        self.audio = rng.normal(0, 1, (classes, 128)).astype(np.float32)


def _segment_plan(rng, c: int, classes: int, asynchronous: bool, event: bool = True, segments: int = T,
                  distractors: float = 0.8):
    """Per-segment (visible class, audible class, label) for one video of class c (no event: all background)."""
    background = classes
    start = int(rng.integers(0, max(1, segments - 4)))
    end = int(rng.integers(start + 2, min(segments, start + 6) + 1)) if event else start
    others = [k for k in range(classes) if k != c]
    vis = np.full(segments, NONE)
    aud = np.full(segments, NONE)
    label = np.full(segments, background)
    for t in range(segments):
        if start <= t < end:
            vis[t], aud[t], label[t] = c, c, c
            continue
        kind = rng.integers(1, 5) if rng.random() < distractors else 0
        if kind == 1:
            vis[t] = c                                      # silent object
        elif kind == 2:
            aud[t] = c                                      # off-screen sound
        elif kind == 3:
            vis[t], aud[t] = c, rng.choice(others)          # mismatched pair
        elif kind == 4:
            vis[t], aud[t] = rng.choice(others), c
    if asynchronous:
        # The object is seen in the event window but silent there; which class sounds is heard
        # only in two other seconds, where nothing is seen. The window is an event only when
        # that off-screen sound is c: the label of a segment needs audio from other seconds.
        heard = c if rng.random() < 0.5 else int(rng.choice(others))
        inside = (label == c)
        vis = np.where(inside, c, NONE)
        aud = np.full(segments, NONE)
        outside = np.flatnonzero(~inside)
        aud[rng.choice(outside, size=min(2, len(outside)), replace=False)] = heard
        if heard != c:
            label[:] = background
    return vis, aud, label


def make_videos(n: int, classes: int = 4, seed: int = 0, asynchronous: bool = False,
                noise: float = 0.3, protos: Prototypes | None = None, background_share: float = 0.0,
                distractors: float = 0.8, segments: int = T):
    """audio [n,T,128], visual [n,T,7,7,512], segment labels [n,T], video labels [n,C+1].

    ``background_share`` of the videos have no event at all (like AVE's 178 background-only
    videos); ``distractors`` is the share of background segments that show or play the
    video's class in one modality only (or paired with another class).
    """
    protos = protos or Prototypes(classes)
    rng = np.random.default_rng(seed + 1000)
    audio = rng.normal(0, noise, (n, segments, 128)).astype(np.float32)
    visual = np.abs(rng.normal(0, noise, (n, segments, GRID, GRID, 512))).astype(np.float32)
    seg = np.zeros((n, segments), np.int64)
    vid = np.zeros((n, classes + 1), np.float32)
    for i in range(n):
        c = int(rng.integers(0, classes))
        has_event = background_share == 0 or rng.random() >= background_share
        vis, aud, seg[i] = _segment_plan(rng, c, classes, asynchronous, event=has_event, segments=segments,
                                         distractors=distractors)
        vid[i, c if (seg[i] == c).any() else classes] = 1.0
        for t in range(segments):
            if vis[t] != NONE:
                row, col = rng.integers(0, GRID - OBJECT_CELLS + 1, size=2)
                visual[i, t, row:row + OBJECT_CELLS, col:col + OBJECT_CELLS] += 5.0 * np.abs(protos.visual[vis[t]])
            if aud[t] != NONE:
                audio[i, t] += 2.0 * protos.audio[aud[t]]
    return audio, visual, seg, vid


def tensor_splits(train: int, val: int, classes: int = 4, asynchronous: bool = False, seed: int = 0,
                  background_share: float = 0.0, distractors: float = 0.8, segments: int = T):
    """Train and validation sets drawn from the same prototypes. Background-only videos
    (``background_share``) go to training only, as AVE's background videos do."""
    protos = Prototypes(classes, seed)
    return tuple(TensorFeatures(*make_videos(n, classes, seed + k, asynchronous, protos=protos,
                                             background_share=share, distractors=distractors, segments=segments))
                 for k, n, share in ((1, train, background_share), (2, val, 0.0)))
