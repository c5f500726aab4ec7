"""KAPAO pre/post-processing on synthetic frames and candidates with hand-checked expectations."""

import numpy as np
import pytest
import torch

from intradp_ros.models.kapao import KapaoModel
from intradp_ros.models.kapao_postprocess import (
    KapaoThresholds,
    candidates_from_detections,
    filter_level_rows,
    fuse_keypoints,
    level_offsets,
    merge_candidates,
    non_max_suppression,
    poses_from_candidates,
    poses_from_detections,
)
from intradp_ros.models.letterbox import LetterboxInfo, letterbox, letterbox_size, to_original_xy

IDENTITY = LetterboxInfo((640, 640), (640, 640), 1.0, 0, 0)


def candidate(cx, cy, w, h, obj, cls, cls_prob=1.0, kps=None):
    """One decoded row: xywh, objectness, 18 class probabilities, 34 keypoint coordinates."""
    row = torch.zeros(57)
    row[:4] = torch.tensor([cx, cy, w, h])
    row[4] = obj
    row[5 + cls] = cls_prob
    if kps is not None:
        row[23:] = torch.as_tensor(kps, dtype=torch.float32).reshape(-1)
    return row


def test_letterbox_places_a_4_3_frame_and_maps_points_back():
    assert letterbox_size((480, 640)) == (960, 1280)
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[10, 20] = (255, 0, 0)  # a red pixel
    frame[:, :, 2] = 7
    out, info = letterbox(frame, (64, 64))
    assert out.shape == (1, 3, 64, 64) and out.dtype == torch.uint8
    assert (info.gain, info.pad_x, info.pad_y) == (1.0, 0, 8)
    assert torch.all(out[0, :, :8] == 114) and torch.all(out[0, :, 56:] == 114)
    assert out[0, :, 18, 20].tolist() == [255, 0, 7]
    back = to_original_xy(torch.tensor([[20.0, 18.0, 70.0, -3.0]]), info)
    assert back.tolist() == [[20.0, 10.0, 64.0, 0.0]]  # clipped into the 64x48 frame

    big = np.full((96, 128, 3), 200, np.uint8)
    out, info = letterbox(big, (64, 64))
    assert info.gain == 0.5 and info.pad_y == 8 and torch.all(out[0, :, 8:56] == 200)


def test_a_known_box_survives_nms_and_an_overlapping_weaker_one_does_not():
    cands = torch.stack(
        [
            candidate(100, 100, 40, 80, 0.95, 0),  # the person
            candidate(102, 101, 40, 80, 0.90, 0),  # duplicate, IoU ~0.9
            candidate(300, 300, 40, 80, 0.80, 0),  # another person
            candidate(101, 100, 40, 80, 0.92, 3),  # same place, other class: class-offset NMS keeps it
            candidate(500, 500, 40, 80, 0.65, 0),  # below conf 0.7
        ]
    )
    det = non_max_suppression(cands, conf=0.7, iou=0.45)
    assert det.shape == (3, 40)
    assert det[:, 5].tolist() == [0.0, 3.0, 0.0]
    assert torch.allclose(det[0, :5], torch.tensor([80.0, 60.0, 120.0, 140.0, 0.95]))
    persons = non_max_suppression(cands, conf=0.7, iou=0.45, classes=[0])
    assert persons[:, 5].tolist() == [0.0, 0.0] and persons[:, 4].tolist() == pytest.approx([0.95, 0.80])


def test_keypoint_detection_within_tolerance_replaces_the_pose_keypoint():
    pose_kps = np.stack([np.arange(17) * 10.0 + 50, np.full(17, 60.0)], 1)  # keypoint k at (50 + 10k, 60)
    cands = torch.stack(
        [
            candidate(100, 100, 80, 160, 0.9, 0, kps=pose_kps),
            candidate(52, 63, 6, 6, 0.8, 1),  # nose (class 1) 3.6 px from the pose's nose: replaces it
            candidate(70 + 40, 60, 6, 6, 0.8, 3),  # class 3 (keypoint 2 at (70, 60)) 40 px away: too far
        ]
    )
    poses = poses_from_candidates(cands, IDENTITY, KapaoThresholds())
    assert len(poses) == 1
    p = poses[0]
    assert p.box.tolist() == [60.0, 20.0, 140.0, 180.0] and p.score == pytest.approx(0.9)
    assert p.keypoints[0].tolist() == pytest.approx([52.0, 63.0, 0.8])
    assert p.keypoints[2].tolist() == pytest.approx([70.0, 60.0, 0.0])
    assert p.keypoints[5].tolist() == pytest.approx([100.0, 60.0, 0.0])


def test_fusion_follows_upstream_rules():
    thr = KapaoThresholds(overwrite_tol=25)
    poses = np.zeros((2, 17, 3))
    poses[0, 0] = (10, 10, 0)
    poses[1, 0] = (200, 200, 0)
    scores = np.array([0.9, 0.1])  # pose 1 is below conf_kp_person: never fused
    dets = np.array(
        [
            [195, 195, 205, 205, 0.9, 1],  # nearest eligible pose is 0, 269 px away: no change
            [8, 8, 14, 14, 0.7, 1],  # replaces pose 0's nose
            [9, 9, 11, 11, 0.6, 1],
        ]
    )  # lower conf than the replacement: ignored
    out = fuse_keypoints(poses, scores, dets, thr)
    assert out[0, 0].tolist() == pytest.approx([11, 11, 0.7])
    assert out[1, 0].tolist() == [200, 200, 0]


def test_row_filtered_survivors_merge_to_the_full_result():
    torch.manual_seed(3)
    model = KapaoModel("s6", (128, 128)).eval()
    with torch.no_grad():
        for conv in model.detect.m:  # confident persons on anchors 0-1 and noses on anchor 2
            conv.bias.view(3, 57)[:2, 5] = 6.0
            conv.bias.view(3, 57)[2, 6] = 6.0
        det, raw = model(torch.randint(0, 256, (1, 3, 128, 128), dtype=torch.uint8))
    conf = float(det[0, :, 4].quantile(0.97))  # some candidates on every side
    full_cands, full_idx = candidates_from_detections(det, conf)[0]
    shapes = model.detect.level_shapes()
    offsets = level_offsets(shapes)
    parts = []
    for level, (h, w) in enumerate(shapes):
        cut = h // 3
        for r0, r1 in ((cut, h), (0, cut)):  # robot rows and server rows, arriving in any order
            rows = model.detect.decode_rows(raw[level][:, :, r0:r1], level, r0)
            parts.append(filter_level_rows(rows, conf, offsets[level], (h, w), r0)[0])
    cands, idx = merge_candidates(parts)
    # Same survivors in the same order; values equal up to float rounding (kernels differ by tensor size).
    assert torch.equal(idx, full_idx) and torch.allclose(cands, full_cands, rtol=1e-6, atol=1e-4)
    thr = KapaoThresholds(conf=conf, conf_kp=conf)
    info = LetterboxInfo((128, 128), (128, 128), 1.0, 0, 0)
    a, b = poses_from_candidates(cands, info, thr), poses_from_detections(det, info, thr)
    assert len(a) == len(b) > 0
    assert all(np.allclose(p.keypoints, q.keypoints, atol=1e-3) and np.allclose(p.box, q.box) for p, q in zip(a, b))


def test_filter_refuses_rows_outside_the_level():
    rows = torch.zeros(1, 3, 4, 10, 57)
    with pytest.raises(ValueError, match="do not fit level"):
        filter_level_rows(rows, 0.5, 0, (8, 10), row_start=6)
