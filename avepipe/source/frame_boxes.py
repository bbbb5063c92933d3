"""Per-frame boxes (``frame_boxes.json`` of ``avepipe synth``) as the box of each feature second.

A second's features average the frames sampled at t + k/fps (the extractor's fps, see
extract/sampling.py), and the object moves between them: a box describing only the frame at
t misses where the object was at t + 0.5 s. So a second is scored against the union of the
boxes of exactly the frames its features average (frames without a box add nothing).

Layout: ``{"size": [w, h], "fps": video_fps, "videos": {"<id>": [[x0, y0, x1, y1] | null, ...]}}``,
one entry per frame of the video, frame j shown from j / video_fps.
"""
from __future__ import annotations

import numpy as np

from avepipe.errors import UserError
from avepipe.extract.sampling import frame_for_targets, target_times


def is_frame_boxes(data) -> bool:
    return isinstance(data, dict) and {"size", "fps", "videos"} <= set(data) and isinstance(data["videos"], dict)


def union_per_second(frame_boxes: list, video_fps: float, sample_fps: int) -> dict[int, list[float]]:
    """Second -> union of the boxes of the frames sampled in it (seconds with none are left out)."""
    seconds = int(np.ceil(len(frame_boxes) / video_fps))
    targets = target_times(seconds, sample_fps)
    frames = frame_for_targets(np.arange(len(frame_boxes)) / video_fps, targets)
    unions: dict[int, list[float]] = {}
    for target, frame in zip(targets, frames):
        box = frame_boxes[frame]
        if box is None:
            continue
        second = int(np.floor(target + 1e-9))
        old = unions.get(second)
        unions[second] = list(box) if old is None else [min(old[0], box[0]), min(old[1], box[1]),
                                                         max(old[2], box[2]), max(old[3], box[3])]
    return unions


def second_boxes(data: dict, source: str, sample_fps: int) -> dict:
    """The per-second layout ``parse_boxes`` reads, from the per-frame one."""
    try:
        video_fps = float(data["fps"])
        return {video_id: {"frame_size": data["size"], "boxes": union_per_second(boxes, video_fps, sample_fps)}
                for video_id, boxes in data["videos"].items()}
    except (TypeError, ValueError, IndexError):
        raise UserError(f"{source}: frame boxes must be a list of [x0, y0, x1, y1] or null per frame") from None
