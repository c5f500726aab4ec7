"""`rosrun intradp_ros bench_lossy`: measured output deviation of the opt-in lossy modes on the bundled data.

Each mode changes what one transfer carries, exactly as the codec does on the wire, and the model's output is
compared with exact local inference:
- `fp16` / `int8`: the float32 activation at a mid-network cut (where a split plan sends it) goes through the
  lossy codec (encode + decode of core/codecs/lossy.py) before the rest of the network runs;
- `jpeg90` / `jpeg75`: the raw camera frame is JPEG re-encoded at that quality and decoded (KAPAO only).
Metrics: KAPAO keypoint displacement in pixels and detection agreement (poses matched at box IoU >= 0.5 over the
larger count) and the relative error of its raw output tensor, SCONet voxel class agreement, torchvision top-1
agreement and relative logit error. Weights are
seeded random (no checkpoint is downloaded); random weights understate real sensitivity, and no registry package
in this environment ships trained weights for these models, so the table says how far each mode moves outputs,
not how accuracy on a dataset changes.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from intradp_ros.core.codec import decode_tile, encode_tile
from intradp_ros.core.tile import CODEC_FP16, CODEC_INT8, Tile

ACT_MODES = {"fp16": CODEC_FP16, "int8": CODEC_INT8}
JPEG_MODES = {"jpeg90": 90, "jpeg75": 75}


@dataclass
class Row:
    model: str
    mode: str
    metric: str
    value: float
    bytes_ratio: float  # bytes of the transfer in this mode / exact bytes


def through_codec(t: torch.Tensor, codec: int) -> torch.Tensor:
    """The tensor as the receiver sees it after `codec` (encode + decode through the wire codec)."""
    arr = t.detach().cpu().contiguous().numpy()
    out = decode_tile(encode_tile(Tile(0, 0, 0, 0, 0, max(arr.shape[0], 1), arr, codec)))
    return torch.from_numpy(np.array(out.data)).to(t.dtype)


def codec_ratio(t: torch.Tensor, codec: int) -> float:
    arr = t.detach().cpu().contiguous().numpy()
    return len(encode_tile(Tile(0, 0, 0, 0, 0, max(arr.shape[0], 1), arr, codec)).data) / arr.nbytes


def run_cut(model: torch.nn.Module, cut: torch.nn.Module, x: torch.Tensor, codec: int | None) -> Any:
    """model(x) with the output of `cut` replaced by what `codec` delivers (None: exact)."""
    handle = None
    if codec is not None:
        handle = cut.register_forward_hook(lambda _m, _a, y: through_codec(y, codec))
    try:
        with torch.no_grad():
            return model(x)
    finally:
        if handle is not None:
            handle.remove()


def exact_with_cut(model: torch.nn.Module, cut: torch.nn.Module, x: torch.Tensor) -> tuple[Any, torch.Tensor]:
    """(exact model(x), the exact activation at `cut`)."""
    box: dict[str, torch.Tensor] = {}

    def keep(_m: object, _a: object, y: torch.Tensor) -> None:
        box["y"] = y.detach().clone()

    handle = cut.register_forward_hook(keep)
    try:
        with torch.no_grad():
            return model(x), box["y"]
    finally:
        handle.remove()


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    from intradp_ros.core.codecs.camera import decode_camera_bytes

    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, "JPEG", quality=quality)
    return decode_camera_bytes(buf.getvalue(), 1 << 26)


# ------------------------------------------------------------------------------------------------------- KAPAO
def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def compare_poses(ref: Sequence[Any], got: Sequence[Any]) -> tuple[float, float, float]:
    """(detection agreement, mean and max keypoint displacement in px over matched poses)."""
    if not ref and not got:
        return 1.0, 0.0, 0.0
    used: set = set()
    disp: list[float] = []
    matched = 0
    for p in ref:
        best, best_iou = None, 0.5
        for j, q in enumerate(got):
            if j not in used:
                iou = _iou(np.asarray(p.box, float), np.asarray(q.box, float))
                if iou >= best_iou:
                    best, best_iou = j, iou
        if best is not None:
            used.add(best)
            matched += 1
            d = np.linalg.norm(np.asarray(p.keypoints)[:, :2] - np.asarray(got[best].keypoints)[:, :2], axis=1)
            disp.extend(d.tolist())
    agree = matched / max(len(ref), len(got))
    return agree, float(np.mean(disp)) if disp else 0.0, float(np.max(disp)) if disp else 0.0


def bench_kapao(frames: int) -> list[Row]:
    from PIL import Image as PILImage

    from intradp_ros.eval.sample_data import camera_frames, load_picture
    from intradp_ros.models import build
    from intradp_ros.models.kapao_postprocess import KapaoThresholds, poses_from_detections
    from intradp_ros.models.letterbox import letterbox

    torch.manual_seed(6)  # the seed the system tests use: KAPAO's person class wins in some cells
    model = build("kapao_s6", input_size=[256, 320]).eval()
    thr = KapaoThresholds(conf=0.0004, conf_kp=0.0004)
    cut = model.model[4]

    def det_of(out: Any) -> torch.Tensor:
        return (out[0] if isinstance(out, (tuple, list)) else out).float()

    def poses(out: Any, info: Any) -> list[Any]:
        return poses_from_detections(det_of(out), info, thr)

    def rel(out: Any, ref_out: Any) -> float:
        a, b = det_of(out), det_of(ref_out)
        return float((a - b).norm() / b.norm().clamp_min(1e-12))

    stats: dict[str, list[tuple[float, ...]]] = {}
    for rgb in camera_frames(load_picture("astronaut"), frames=frames):
        rgb = np.ascontiguousarray(rgb)
        x, info = letterbox(rgb, (256, 320))
        out, act = exact_with_cut(model, cut, x)
        ref = poses(out, info)
        for mode, codec in ACT_MODES.items():
            lossy = run_cut(model, cut, x, codec)
            got = poses(lossy, info)
            stats.setdefault(mode, []).append((*compare_poses(ref, got), codec_ratio(act, codec), rel(lossy, out)))
        for mode, quality in JPEG_MODES.items():
            buf = io.BytesIO()
            PILImage.fromarray(rgb, "RGB").save(buf, "JPEG", quality=quality)
            xj, info_j = letterbox(jpeg_roundtrip(rgb, quality), (256, 320))
            lossy = run_cut(model, cut, xj, None)
            got = poses(lossy, info_j)
            jpeg_ratio = len(buf.getvalue()) / rgb.nbytes
            stats.setdefault(mode, []).append((*compare_poses(ref, got), jpeg_ratio, rel(lossy, out)))
    metrics = (
        ("detection agreement", 0, np.mean),
        ("keypoint displacement px (mean)", 1, np.mean),
        ("keypoint displacement px (max)", 2, np.max),
        ("relative output error (max)", 4, np.max),
    )
    rows = []
    for mode, values in stats.items():
        arr = np.asarray(values)
        for metric, col, reduce in metrics:
            rows.append(Row("kapao_s6 256x320", mode, metric, float(reduce(arr[:, col])), float(arr[:, 3].mean())))
    return rows


# ------------------------------------------------------------------------------------------------------ SCONet
def bench_sconet() -> list[Row]:
    from intradp_ros.eval.sample_data import SceneConfig, cloud_frames
    from intradp_ros.models import build
    from intradp_ros.models.voxels import AGRNAV_GRID, VoxelGridSpec, grid_to_model_input, voxelize

    torch.manual_seed(0)
    model = build("sconet", grid_xzy=[128, 32, 128]).eval()
    spec = VoxelGridSpec(AGRNAV_GRID.voxel_size * 2, AGRNAV_GRID.origin, (128, 128, 32))
    x = grid_to_model_input(voxelize(next(iter(cloud_frames(SceneConfig(frames=2)))), spec))
    cut = model.Encoder_block2
    out, act = exact_with_cut(model, cut, x)
    ref = out.argmax(1)
    rows = []
    for mode, codec in ACT_MODES.items():
        got = run_cut(model, cut, x, codec).argmax(1)
        ratio = codec_ratio(act, codec)
        rows.append(Row("sconet 128x32x128", mode, "voxel class agreement", float((got == ref).float().mean()), ratio))
    return rows


# ------------------------------------------------------------------------------------------------- torchvision
def bench_torchvision(frames: int) -> list[Row]:
    from intradp_ros.eval.sample_data import camera_frames, load_picture
    from intradp_ros.models import build
    from intradp_ros.models.letterbox import letterbox

    torch.manual_seed(0)
    model = build("torchvision:resnet18").eval()
    cut = model.net.layer2
    stats: dict[str, list[tuple[float, float, float]]] = {}
    for rgb in camera_frames(load_picture("astronaut"), frames=frames):
        x, _ = letterbox(np.ascontiguousarray(rgb), (224, 224))
        ref, act = exact_with_cut(model, cut, x)
        for mode, codec in ACT_MODES.items():
            got = run_cut(model, cut, x, codec)
            rel = float((got - ref).norm() / ref.norm().clamp_min(1e-12))
            top1 = float((got.argmax(-1) == ref.argmax(-1)).float().mean())
            stats.setdefault(mode, []).append((top1, rel, codec_ratio(act, codec)))
    rows = []
    for mode, s in stats.items():
        a = np.asarray(s)
        rows.append(Row("resnet18 224", mode, "top-1 agreement", float(a[:, 0].mean()), float(a[:, 2].mean())))
        rows.append(
            Row("resnet18 224", mode, "relative logit error (max)", float(a[:, 1].max()), float(a[:, 2].mean()))
        )
    return rows


BENCHES: dict[str, Callable[[int], list[Row]]] = {
    "kapao": bench_kapao,
    "sconet": lambda _frames: bench_sconet(),
    "torchvision": bench_torchvision,
}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_lossy", description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=4, help="camera frames per model (KAPAO, torchvision)")
    ap.add_argument("--models", default="kapao,sconet,torchvision", help="comma-separated subset")
    ap.add_argument("--json", action="store_true", help="one JSON list of rows")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows: list[Row] = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        if name not in BENCHES:
            print(f"bench_lossy: unknown model set {name!r} (known: {', '.join(BENCHES)})", file=sys.stderr)
            return 2
        rows += BENCHES[name](max(1, args.frames))
    if args.json:
        print(json.dumps([asdict(r) for r in rows]))
        return 0
    print(f"{'model':<18} {'mode':<7} {'metric':<34} {'value':>10} {'bytes vs exact':>15}")
    for r in rows:
        print(f"{r.model:<18} {r.mode:<7} {r.metric:<34} {r.value:>10.4g} {r.bytes_ratio:>15.3f}")
    print("random seeded weights; cut: KAPAO layer 4, SCONet Encoder_block2, ResNet18 layer2 (float32 activations)")
    return 0
