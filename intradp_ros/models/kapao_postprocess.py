"""KAPAO post-processing: per-cell candidate filter, NMS, person/keypoint split, keypoint fusion, original-frame coords.

The filter is per cell, so each side of a split inference can filter its own rows of a decoded level map and send
only the survivors together with their index in the full detection tensor; `merge_candidates` restores upstream's
order, so NMS over the merged survivors gives exactly the result of NMS over the whole tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torchvision

from intradp_ros.core.sparse import SparseRows
from intradp_ros.models.kapao import NUM_ANCHORS, NUM_CLASSES, NUM_COORDS
from intradp_ros.models.letterbox import LetterboxInfo, to_original_xy

NUM_KEYPOINTS = NUM_COORDS // 2
MAX_WH = 4096  # class offset for class-separated NMS
MAX_NMS = 30000  # most candidates handed to torchvision NMS


@dataclass(frozen=True)
class KapaoThresholds:
    """Post-processing thresholds (defaults: KAPAO's demo settings)."""

    conf: float = 0.7  # person detections
    iou: float = 0.45
    conf_kp: float = 0.5  # keypoint-object detections
    iou_kp: float = 0.45
    conf_kp_person: float = 0.2  # only poses scoring above this get keypoint detections fused in
    overwrite_tol: float = 25.0  # pixels (original frame) between a keypoint detection and the pose keypoint
    max_det: int = 300
    use_kp_dets: bool = True

    @property
    def candidate_conf(self) -> float:
        """Objectness threshold of the per-cell filter: no candidate below it can survive either NMS."""
        return min(self.conf, self.conf_kp) if self.use_kp_dets else self.conf


@dataclass
class Pose:
    """One person: box (x1, y1, x2, y2) and 17 keypoints (x, y, conf) in original-frame pixels."""

    box: np.ndarray
    score: float
    keypoints: np.ndarray = field(default_factory=lambda: np.zeros((NUM_KEYPOINTS, 3), np.float32))


def filter_level_rows(
    decoded_rows: torch.Tensor, conf: float, level_offset: int, level_hw: tuple[int, int], row_start: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-cell filter of decoded rows [B, 3, h, W, 57] of one level (objectness > conf).

    Returns per batch item (candidates [n, 57], index [n] into the full (B, N, 57) detection tensor).
    `level_offset` is the level's first index in that tensor (sum of 3*H*W of the levels before it).
    """
    _, na, h, w, _ = decoded_rows.shape
    level_h, level_w = level_hw
    if w != level_w or row_start < 0 or row_start + h > level_h:
        raise ValueError(f"rows [{row_start}, {row_start + h}) x {w} do not fit level {level_h}x{level_w}")
    keep = decoded_rows[..., 4] > conf  # [B, 3, h, W]
    a = torch.arange(na, device=decoded_rows.device).view(na, 1, 1)
    r = torch.arange(row_start, row_start + h, device=decoded_rows.device).view(1, h, 1)
    c = torch.arange(w, device=decoded_rows.device).view(1, 1, w)
    flat = level_offset + a * (level_h * level_w) + r * level_w + c  # [3, h, W]
    return [(decoded_rows[b][keep[b]], flat[keep[b]]) for b in range(decoded_rows.shape[0])]


def level_offsets(level_shapes: Sequence[tuple[int, int]], na: int = NUM_ANCHORS) -> list[int]:
    """First index of each level in the concatenated detection tensor."""
    offsets, total = [], 0
    for h, w in level_shapes:
        offsets.append(total)
        total += na * h * w
    return offsets


def candidates_from_detections(detections: torch.Tensor, conf: float) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-cell filter over the full detection tensor (B, N, 57): per batch item (candidates, index)."""
    keep = detections[..., 4] > conf
    return [(detections[b][keep[b]], torch.nonzero(keep[b]).reshape(-1)) for b in range(detections.shape[0])]


def merge_candidates(parts: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate survivors from several row ranges / levels and put them back in detection-tensor order."""
    parts = list(parts)
    if not parts:
        raise ValueError("merge_candidates needs at least one part")
    cands = torch.cat([p[0] for p in parts], 0)
    index = torch.cat([p[1].to(torch.int64) for p in parts], 0)
    order = torch.argsort(index, stable=True)
    return cands[order], index[order]


def non_max_suppression(
    candidates: torch.Tensor,
    conf: float,
    iou: float,
    classes: Sequence[int] | None = None,
    max_det: int = 300,
    nc: int = NUM_CLASSES,
) -> torch.Tensor:
    """Class-offset NMS over candidates [n, 57] (already or not yet filtered by objectness).

    Returns [k, 6 + 34]: x1, y1, x2, y2, conf (= obj * best class prob), class, 34 keypoint coordinates.
    """
    x = candidates[candidates[:, 4] > conf]
    cls_conf = x[:, 5 : 5 + nc] * x[:, 4:5]
    best, j = cls_conf.max(1, keepdim=True)
    xy, wh = x[:, 0:2], x[:, 2:4]
    box = torch.cat((xy - wh / 2, xy + wh / 2), 1)
    det = torch.cat((box, best, j.to(x.dtype), x[:, 5 + nc :]), 1)[best.view(-1) > conf]
    if classes is not None:
        det = det[(det[:, 5:6] == torch.tensor(list(classes), device=det.device, dtype=det.dtype)).any(1)]
    if det.shape[0] == 0:
        return det
    if det.shape[0] > MAX_NMS:
        det = det[det[:, 4].argsort(descending=True)[:MAX_NMS]]
    keep = torchvision.ops.nms(det[:, :4] + det[:, 5:6] * MAX_WH, det[:, 4], iou)[:max_det]
    return det[keep]


def fuse_keypoints(
    poses_kp: np.ndarray, pose_scores: np.ndarray, kp_dets: np.ndarray, thr: KapaoThresholds
) -> np.ndarray:
    """Replace pose keypoints by keypoint-object detections (upstream's rule, in the same order).

    poses_kp [P, 17, 3] (x, y, conf), kp_dets [K, 6] (x1, y1, x2, y2, conf, cls) in original-frame pixels. A
    detection of class c replaces keypoint c-1 of the nearest eligible pose (score > conf_kp_person) when its conf
    is higher than that keypoint's and it lies within overwrite_tol. Bounded by max_det iterations.
    """
    out = poses_kp.copy()
    eligible = np.nonzero(pose_scores > thr.conf_kp_person)[0]
    if len(eligible) == 0 or len(kp_dets) == 0:
        return out
    centers = np.stack(((kp_dets[:, 0] + kp_dets[:, 2]) / 2, (kp_dets[:, 1] + kp_dets[:, 3]) / 2), 1)
    for (x, y), conf, cls in zip(centers[: thr.max_det], kp_dets[: thr.max_det, 4], kp_dets[: thr.max_det, 5]):
        k = int(cls) - 1
        slots = out[eligible, k]  # [P', 3]
        dist = np.hypot(slots[:, 0] - x, slots[:, 1] - y)
        m = int(np.argmin(dist))
        if conf > slots[m, 2] and dist[m] < thr.overwrite_tol:
            out[eligible[m], k] = (x, y, conf)
    return out


def poses_from_candidates(
    candidates: torch.Tensor, info: LetterboxInfo, thr: KapaoThresholds = KapaoThresholds()
) -> list[Pose]:
    """Persons (class 0) with their keypoints, keypoint objects (classes 1..17) fused in, in original-frame pixels."""
    person = non_max_suppression(candidates, thr.conf, thr.iou, classes=[0], max_det=thr.max_det)
    if person.shape[0] == 0:
        return []
    boxes = to_original_xy(person[:, :4], info).round()
    kps = to_original_xy(person[:, 6 : 6 + NUM_COORDS], info).view(-1, NUM_KEYPOINTS, 2)
    poses_kp = torch.cat((kps, torch.zeros_like(kps[..., :1])), -1).cpu().numpy().astype(np.float64)
    scores = person[:, 4].cpu().numpy()
    if thr.use_kp_dets:
        kp = non_max_suppression(
            candidates, thr.conf_kp, thr.iou_kp, classes=range(1, NUM_KEYPOINTS + 1), max_det=thr.max_det
        )
        if kp.shape[0]:
            kp_boxes = to_original_xy(kp[:, :4], info)
            kp_dets = torch.cat((kp_boxes, kp[:, 4:6]), 1).cpu().numpy().astype(np.float64)
            poses_kp = fuse_keypoints(poses_kp, scores, kp_dets, thr)
    boxes_np = boxes.cpu().numpy()
    return [
        Pose(boxes_np[i].astype(np.float32), float(scores[i]), poses_kp[i].astype(np.float32))
        for i in range(len(scores))
    ]


def candidates_from_sets(sets: Sequence[SparseRows], item: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge the per-level candidate sets of `KapaoCandidates` (positions in each level's [B, 3, H, W] grid) into
    batch item `item`'s candidates [n, 57] and their index in upstream's (B, N, 57) detection tensor, in its order."""
    parts = []
    offset = 0
    for sr in sets:
        b, na, h, w = sr.mask_shape
        per_item = na * h * w
        keep = (sr.index // per_item) == item
        parts.append((sr.values[keep], sr.index[keep] - item * per_item + offset))
        offset += per_item
    return merge_candidates(parts)


def poses_from_candidate_sets(
    sets: Sequence[SparseRows], info: LetterboxInfo, thr: KapaoThresholds = KapaoThresholds()
) -> list[Pose]:
    """Post-process one frame from the candidate head's output (equal to `poses_from_detections` on the full
    forward when the head's threshold is at most `thr.candidate_conf`)."""
    cands, _ = candidates_from_sets(sets)
    return poses_from_candidates(cands[cands[:, 4] > thr.candidate_conf], info, thr)


def poses_from_detections(
    detections: torch.Tensor, info: LetterboxInfo, thr: KapaoThresholds = KapaoThresholds()
) -> list[Pose]:
    """Post-process one frame's full detection tensor (1, N, 57) or (N, 57)."""
    det = detections.reshape(-1, detections.shape[-1])
    cands = det[det[:, 4] > thr.candidate_conf]
    return poses_from_candidates(cands, info, thr)
