"""Per-frame boxes scored per second: the union of the frames the features average."""
from __future__ import annotations

import json

import pytest

from avepipe.data.synth import generate_dataset
from avepipe.errors import UserError
from avepipe.source.api import load_boxes
from avepipe.source.frame_boxes import union_per_second


def test_a_second_is_the_union_of_its_sampled_frames_only():
    frames = [[j, j, j + 1, j + 1] for j in range(8)]          # 4 fps, 2 s, frame j at j / 4 s
    assert union_per_second(frames, 4, 2) == {0: [0, 0, 3, 3], 1: [4, 4, 7, 7]}      # frames 0, 2 and 4, 6
    assert union_per_second(frames, 4, 4) == {0: [0, 0, 4, 4], 1: [4, 4, 8, 8]}
    frames[4] = frames[6] = None
    assert union_per_second(frames, 4, 2) == {0: [0, 0, 3, 3]}                       # no box sampled in second 1


def test_synth_frame_boxes_read_at_the_video_rate_give_the_per_second_boxes(tmp_path):
    dataset = generate_dataset(tmp_path, videos=3, seconds=3, size=(64, 48), fps=4, background_fraction=0.0,
                               progress=False)
    per_second = load_boxes(dataset.boxes_path)
    from_frames = load_boxes(tmp_path / "frame_boxes.json", sample_fps=4)
    assert from_frames == per_second and any(v.boxes for v in per_second.values())
    at_two = load_boxes(tmp_path / "frame_boxes.json", sample_fps=2)
    for video_id, entry in at_two.items():
        for second, box in entry.boxes.items():       # fewer frames: inside the whole-second union
            whole = per_second[video_id].boxes[second]
            assert whole[0] <= box[0] and whole[1] <= box[1] and box[2] <= whole[2] and box[3] <= whole[3]
    with pytest.raises(UserError, match="per-frame boxes need the extractor's frames per second"):
        load_boxes(tmp_path / "frame_boxes.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"size": [64, 48], "fps": 4, "videos": {"v": [[1, 2]]}}))
    with pytest.raises(UserError, match="bad.json: frame boxes must be a list of"):
        load_boxes(bad, sample_fps=4)
