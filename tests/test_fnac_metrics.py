"""cIoU / AUC / peak metrics, heatmap pictures and boxes.json parsing on hand-made maps and boxes."""
from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.image import imread

from avepipe.errors import UserError
from avepipe.source.api import load_boxes
from avepipe.source.heatmaps import overlay_heatmap, write_event_heatmaps
from avepipe.source.metrics import (Box, auc, binarise, box_mask, ciou, evaluate_maps, mask_iou, peak_position,
                                    upsample_map)

FRAME = (224, 224)
BOX = (64.0, 32.0, 160.0, 128.0)   # grid columns 2..4, rows 1..3 (cells of 32 px)


def box_to_grid(box: Box, frame_size: tuple[int, int], grid: int = 7) -> np.ndarray:
    """A map that is the box: the fraction of each of the ``grid x grid`` cells covered by ``box``: ``[grid, grid]`` in [0, 1]."""
    cell_w, cell_h = frame_size[0] / grid, frame_size[1] / grid
    edges_x = np.arange(grid + 1) * cell_w
    edges_y = np.arange(grid + 1) * cell_h
    x0, y0, x1, y1 = box
    cover_x = np.clip(np.minimum(edges_x[1:], x1) - np.maximum(edges_x[:-1], x0), 0, None) / cell_w
    cover_y = np.clip(np.minimum(edges_y[1:], y1) - np.maximum(edges_y[:-1], y0), 0, None) / cell_h
    return cover_y[:, None] * cover_x[None, :]




def test_box_to_grid_and_mask():
    grid = box_to_grid(BOX, FRAME)
    expected = np.zeros((7, 7))
    expected[1:4, 2:5] = 1
    np.testing.assert_allclose(grid, expected)
    assert box_to_grid((0, 0, 16, 32), FRAME)[0, 0] == pytest.approx(0.5)
    mask = box_mask(BOX, (448, 448), size=FRAME)          # box given in a 448-px frame, mask at 224
    assert mask.sum() == 48 * 48 and mask[16:64, 32:80].all()


def test_mask_iou_by_hand():
    predicted = np.array([[True, True, False]])
    truth = np.array([[False, True, True]])
    assert mask_iou(predicted, truth) == pytest.approx(1 / 3)


def test_perfect_map_scores_one_and_wrong_corner_zero():
    perfect = box_to_grid(BOX, FRAME)
    wrong = np.zeros((7, 7))
    wrong[5:, 5:] = 1.0
    good = evaluate_maps(np.stack([perfect] * 3), [BOX] * 3, [FRAME] * 3)
    assert good["ciou"] == 1.0 and good["peak_in_box"] == 1.0 and good["mean_iou"] > 0.95
    bad = evaluate_maps(np.stack([wrong] * 3), [BOX] * 3, [FRAME] * 3)
    assert bad["ciou"] == 0.0 and bad["peak_in_box"] == 0.0 and bad["mean_iou"] == 0.0


def test_auc_of_a_known_success_curve():
    # success rate 1 at t=0, 0.75 up to 0.25, 0.5 up to 0.5, 0.25 up to 1 -> trapezoids by hand
    ious = np.array([0.0, 0.26, 0.51, 1.0])
    expected = (1 + .75) / 2 * .05 + .75 * .2 + (.75 + .5) / 2 * .05 + .5 * .2 + (.5 + .25) / 2 * .05 + .25 * .45
    assert auc(ious) == pytest.approx(expected)
    assert auc(np.ones(5)) == pytest.approx(1.0)
    assert auc(np.zeros(5)) == pytest.approx(0.025)
    assert ciou(ious) == 0.5


def test_median_threshold_keeps_the_top_half():
    values = np.arange(100, dtype=np.float32).reshape(10, 10) / 99
    assert binarise(values, "median").sum() == 50
    assert binarise(values, 0.9).sum() == 10
    with pytest.raises(ValueError):
        binarise(values, "mean")


def test_peak_position_in_original_frame_pixels():
    grid = np.zeros((7, 7))
    grid[2, 5] = 1.0
    x, y = peak_position(grid, (640, 360))
    assert (x, y) == pytest.approx((5.5 * 640 / 7, 2.5 * 360 / 7))
    up = upsample_map(grid, (640, 360))
    assert up.shape == (360, 640)
    row, col = np.unravel_index(np.argmax(up), up.shape)
    assert abs(col + 0.5 - x) <= 640 / 7 / 2 and abs(row + 0.5 - y) <= 360 / 7 / 2


def test_overlay_and_event_heatmaps(tmp_path):
    frame = np.full((120, 160, 3), 90, np.uint8)
    grid = np.zeros((7, 7))
    grid[6, 0] = 1.0
    peak = overlay_heatmap(frame, grid, tmp_path / "one.png", box=(0, 90, 40, 120), title="t=0")
    assert peak == pytest.approx((0.5 * 160 / 7, 6.5 * 120 / 7))
    image = imread(tmp_path / "one.png")
    assert image.shape[:2] == (120, 160) and image[..., :3].std() > 0.05
    written = write_event_heatmaps(tmp_path / "dir", "vid", {3: frame, 5: frame}, np.stack([grid] * 8))
    assert [w["second"] for w in written] == [3, 5]
    assert all((tmp_path / "dir" / f"vid_{s:04d}.png").is_file() for s in (3, 5))


def test_boxes_json_layouts(tmp_path):
    (tmp_path / "boxes.json").write_text(json.dumps({"a": [None, [0, 0, 10, 10]]}))
    (tmp_path / "scenes.json").write_text(json.dumps({"size": [160, 120]}))
    boxes = load_boxes(tmp_path / "boxes.json")
    assert boxes["a"].frame_size == (160, 120) and boxes["a"].boxes == {1: (0.0, 0.0, 10.0, 10.0)}
    (tmp_path / "own.json").write_text(json.dumps({"b": {"frame_size": [64, 48], "boxes": {"2": [1, 2, 3, 4]}}}))
    assert load_boxes(tmp_path / "own.json")["b"].boxes == {2: (1.0, 2.0, 3.0, 4.0)}
    (tmp_path / "bad.json").write_text(json.dumps({"c": {"frame_size": [64, 48], "boxes": [[5, 5, 1, 1]]}}))
    with pytest.raises(UserError, match="bad.json: video 'c' second 0"):
        load_boxes(tmp_path / "bad.json")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "boxes.json").write_text(json.dumps({"d": [[0, 0, 1, 1]]}))
    with pytest.raises(UserError, match="no frame size"):
        load_boxes(tmp_path / "sub" / "boxes.json")
