"""Deployment heads: the sparse candidate / completion outputs give exactly what upstream's outputs give,
locally and split between robot and server."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from intradp_ros.core import Plan, capture, run_pair
from intradp_ros.core.session import ModelConfig
from intradp_ros.core.sparse import SparseRows
from intradp_ros.models import build
from intradp_ros.models.kapao_postprocess import (
    KapaoThresholds,
    candidates_from_sets,
    poses_from_candidate_sets,
    poses_from_detections,
)
from intradp_ros.models.letterbox import LetterboxInfo
from intradp_ros.models.replica import load_replica
from intradp_ros.models.voxels import VoxelGridSpec, completed_voxels, completed_voxels_from_sparse, predicted_classes


def _pair(name: str, seed: int = 0, **opts):
    torch.manual_seed(seed)
    full = build(name, **opts)
    torch.manual_seed(seed)
    head = build(name, head="candidates" if name.startswith("kapao") else "completion", **opts)
    return full, head


@torch.no_grad()
def test_kapao_candidate_sets_are_the_filtered_detections() -> None:
    full, head = _pair("kapao_s6", seed=6, input_size=(128, 192))
    head.conf = 0.0004  # random weights (seed 6): a low threshold keeps some persons
    x = head.input_spec.example(seed=2)
    det, _ = full(x)
    sets = head(x)
    assert len(sets) == 4 and all(isinstance(s, SparseRows) for s in sets)
    cands, index = candidates_from_sets(sets)
    keep = det[0, :, 4] > 0.0004
    assert int(keep.sum()) > 10
    assert torch.equal(index, torch.nonzero(keep).reshape(-1)) and torch.equal(cands, det[0][keep])
    info = LetterboxInfo((128, 192), (128, 192), 1.0, 0, 0)
    thr = KapaoThresholds(conf=0.0004, conf_kp=0.0004)
    a = poses_from_detections(det, info, thr)
    b = poses_from_candidate_sets(sets, info, thr)
    assert len(a) > 0 and len(a) == len(b)
    for p, q in zip(a, b):
        assert np.array_equal(p.box, q.box) and np.array_equal(p.keypoints, q.keypoints) and p.score == q.score


def test_kapao_head_is_distributed_exactly() -> None:
    _, head = _pair("kapao_s6", input_size=(128, 192))
    head.conf = 0.01
    x = head.input_spec.example(seed=3)
    ref = head(x)
    g = capture(head, x)
    assert sum(n.is_sparse for n in g.nodes) == 4
    for plan in (Plan.server_only(g), Plan.row_split(g, 0.5), Plan.random(g, 4)):
        out = run_pair(g, plan, x)
        assert all(o.equal(r, atol=1e-4) for o, r in zip(out, ref)), plan.name
    # the dense maps never travel under server-only: only the raw image goes up
    assert Plan.server_only(g).bytes("robot->server") == x.numel()


@torch.no_grad()
def test_sconet_completion_equals_completed_voxels_of_the_logits() -> None:
    full, head = _pair("sconet", grid_xzy=(32, 32, 32))
    x = head.input_spec.example(seed=1)
    spec = VoxelGridSpec(0.8, (-10.0, -10.0, -0.1), (32, 32, 32))
    want = completed_voxels(predicted_classes(full(x))[0], x, spec)
    sr = head(x)
    got = completed_voxels_from_sparse(sr, spec)
    assert len(want.indices) > 0
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.classes, want.classes)
    g = capture(head, x)
    out = run_pair(g, Plan.row_split(g, 0.5), x)
    assert out.equal(sr)


def test_heads_are_part_of_the_model_id() -> None:
    a = ModelConfig.from_dict({"name": "sconet", "grid_xzy": [32, 32, 32], "head": "completion"})
    assert a.model_id == 'sconet{"grid_xzy":[32,32,32],"head":"completion"}'
    assert ModelConfig.from_model_id(a.model_id).options["head"] == "completion"
    rep = load_replica(a)
    assert isinstance(rep.forward_local(rep.example), SparseRows)


def test_unknown_head_is_refused() -> None:
    with pytest.raises(ValueError, match="head"):
        build("kapao_s6", input_size=(128, 192), head="boxes")
    with pytest.raises(ValueError, match="head"):
        build("sconet", grid_xzy=(32, 32, 32), head="voxels")
