"""bench_lossy: each lossy mode's rows, with bytes ratios that match the codec and errors ordered fp16 < int8."""

from __future__ import annotations

import json

from intradp_ros.eval.bench_lossy import compare_poses, main


def test_torchvision_rows_and_ordering(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["--models", "torchvision", "--frames", "1", "--json"]) == 0
    rows = {(r["mode"], r["metric"]): r for r in json.loads(capsys.readouterr().out)}
    assert rows[("fp16", "top-1 agreement")]["bytes_ratio"] == 0.5
    assert abs(rows[("int8", "top-1 agreement")]["bytes_ratio"] - 0.25) < 1e-3
    fp16 = rows[("fp16", "relative logit error (max)")]["value"]
    int8 = rows[("int8", "relative logit error (max)")]["value"]
    assert 0 < fp16 < int8 < 0.05  # lossy, small, and float16 keeps more than int8


def test_unknown_model_set_is_refused() -> None:
    assert main(["--models", "nope"]) == 2


class _Pose:
    def __init__(self, box, kp):  # type: ignore[no-untyped-def]
        self.box, self.keypoints = box, kp


def test_compare_poses_matches_by_iou_and_measures_displacement() -> None:
    a = _Pose([0, 0, 10, 10], [[1, 1, 1], [2, 2, 1]])
    b = _Pose([0, 0, 10, 11], [[1, 4, 1], [2, 2, 1]])
    far = _Pose([50, 50, 60, 60], [[0, 0, 1], [0, 0, 1]])
    assert compare_poses([a], [b]) == (1.0, 1.5, 3.0)
    assert compare_poses([a], [far])[0] == 0.0
    assert compare_poses([a, far], [b])[0] == 0.5
    assert compare_poses([], []) == (1.0, 0.0, 0.0)
