"""`scripts/bench_wire --image FILE [--json]`: what each lossless codec does to one camera frame.

The frame (PNG, JPEG or .npy uint8 HxWx3) is put in the model-input layout uint8 [1, 3, H, W] (one tile of all
rows, as a plan sending the whole input would) and sent through the wire codec with every codec that applies:
payload bytes, ratio to the raw pixels (bytes / raw bytes), median encode and decode milliseconds on this
machine, and whether the decoded pixels equal the input bit for bit. A JPEG or PNG file also gets the
`camera` entry (passthrough: the file's own bytes go up, bytes = the file's size plus a 20-byte header, decode =
the receiver's decode + letterbox, exact = the receiver's model input equals the robot's). Times depend on the
CPU and its load: compare ratios, and re-run on the robot for its own times.

`--tiles` prints a second table for the other tile kinds, made on this machine from the bundled sample data: the
SCONet occupancy input (0/1 grid) of a sample point-cloud frame, a sparse completion result of that scene
(positions + 1-byte classes) and KAPAO-S activations (float32, seeded random weights) on a sample photo frame.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from intradp_ros.core.codecs.camera import sniff_format
from intradp_ros.core.codecs.image import webp_layout
from intradp_ros.core.codecs.profile import Measurement, measure_codec
from intradp_ros.core.tile import (
    CODEC_CAMERA,
    CODEC_DELTA_ZSTD,
    CODEC_GREEN_DELTA_ZSTD,
    CODEC_RAW,
    CODEC_WEBP,
    CODEC_ZSTD,
)

IMAGE_CODECS = (CODEC_RAW, CODEC_ZSTD, CODEC_DELTA_ZSTD, CODEC_GREEN_DELTA_ZSTD, CODEC_WEBP)
MAX_PIXELS = 8192 * 8192


SAMPLE = "sample"  # --image sample: the first CompressedImage frame of the bundled camera bag (no file needed)


def sample_jpeg() -> bytes:
    """The JPEG of the sample camera bag's first CompressedImage frame (made exactly as write_image_bag does)."""
    import io

    from PIL import Image

    from intradp_ros.eval.sample_data import JPEG_QUALITY, photo_frames

    buf = io.BytesIO()
    Image.fromarray(next(iter(photo_frames(30))), "RGB").save(buf, "JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def load_frame(path: Path) -> tuple[np.ndarray, bytes | None]:
    """(HxWx3 uint8 RGB pixels, the file's bytes if it is a JPEG/PNG the camera codec can pass through)."""
    if str(path) == SAMPLE:
        from intradp_ros.core.codecs.camera import decode_camera_bytes

        data = sample_jpeg()
        return decode_camera_bytes(data, MAX_PIXELS), data
    if path.suffix.lower() == ".npy":
        arr = np.load(path, allow_pickle=False)
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
            raise ValueError(f"{path}: a .npy frame must be uint8 HxWx3, got {arr.dtype} {arr.shape}")
        return np.ascontiguousarray(arr), None
    data = path.read_bytes()
    if sniff_format(data) is None:
        raise ValueError(f"{path}: not a PNG, JPEG or .npy file")
    from intradp_ros.core.codecs.camera import decode_camera_bytes

    return decode_camera_bytes(data, MAX_PIXELS), data


def bench_frame(rgb: np.ndarray, file_bytes: bytes | None = None, repeat: int = 3) -> list[Measurement]:
    """One Measurement per codec that applies to the frame (and the passthrough entry for a camera file)."""
    x = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None])
    out = [measure_codec(c, x, repeat) for c in IMAGE_CODECS if c != CODEC_WEBP or webp_layout(x.shape) is None]
    if file_bytes is not None:
        out.append(_passthrough(file_bytes, x.shape[-2:], repeat))
    return out


def _passthrough(file_bytes: bytes, hw: Sequence[int], repeat: int) -> Measurement:
    """The robot decodes + letterboxes to the frame's own size (so no resize), the receiver does it again."""
    from intradp_ros.models.camera_input import camera_model_input

    x, _info, _rgb = camera_model_input(file_bytes, hw, MAX_PIXELS)
    frame = x.camera_frame
    reference = x.numpy().copy()
    return measure_codec(CODEC_CAMERA, reference, repeat, encoded=frame.payload(), reference=reference)


def tile_samples() -> list[tuple[str, np.ndarray, np.ndarray | None, tuple[int, ...]]]:
    """(label, data, positions or None, codecs) of the non-image tile kinds, from the bundled sample data."""
    import torch

    from intradp_ros.core.tile import (
        CODEC_BITPACK,
        CODEC_BITPACK_ZSTD,
        CODEC_SPARSE,
        CODEC_SPARSE_ZSTD,
        CODEC_ZSTD_SHUFFLE,
    )
    from intradp_ros.eval.sample_data import SceneConfig, cloud_frames, make_scene, photo_frames
    from intradp_ros.models import build
    from intradp_ros.models.letterbox import letterbox
    from intradp_ros.models.voxels import AGRNAV_GRID, grid_to_model_input, voxelize

    out: list[tuple[str, np.ndarray, np.ndarray | None, tuple[int, ...]]] = []
    cloud = next(iter(cloud_frames(SceneConfig(frames=2))))
    occ = grid_to_model_input(voxelize(cloud, AGRNAV_GRID)).numpy()
    out.append(
        (
            f"sconet occupancy {list(occ.shape)} {occ.dtype}",
            occ,
            None,
            (CODEC_RAW, CODEC_ZSTD, CODEC_BITPACK, CODEC_BITPACK_ZSTD),
        )
    )
    scene = make_scene()
    index = np.flatnonzero(scene.reshape(-1)).astype(np.int64)
    # classes drawn at random (seeded): the incompressible worst case for the entries; positions are the scene's
    classes = np.random.default_rng(0).integers(1, 12, size=index.size).astype(np.uint8)
    label = f"sparse completion {index.size} voxels (int64 pos + random uint8 class)"
    out.append((label, classes, index, (CODEC_SPARSE, CODEC_SPARSE_ZSTD)))
    torch.manual_seed(6)
    model = build("kapao_s6", input_size=[960, 1280]).eval()
    frame = next(iter(photo_frames(1)))
    x, _info = letterbox(frame, (960, 1280))
    acts: dict[str, np.ndarray] = {}

    def keep(name: str):  # type: ignore[no-untyped-def]
        def hook(_module: object, _args: object, y: torch.Tensor) -> None:  # returns None: output unchanged
            acts[name] = y.detach().numpy().copy()

        return hook

    for i in (0, 2, 4):
        model.model[i].register_forward_hook(keep(f"layer {i}"))
    with torch.no_grad():
        model(x)
    for label, a in acts.items():
        out.append((f"kapao_s6 {label} {list(a.shape)} float32", a, None, (CODEC_RAW, CODEC_ZSTD, CODEC_ZSTD_SHUFFLE)))
    return out


def bench_tiles(repeat: int = 3) -> list[tuple[str, Measurement]]:
    rows: list[tuple[str, Measurement]] = []
    for label, data, index, codecs in tile_samples():
        for codec in codecs:
            rows.append((label, measure_codec(codec, np.ascontiguousarray(data), repeat, index=index)))
    return rows


def format_tiles(rows: Sequence[tuple[str, Measurement]]) -> str:
    lines = [f"{'tile':<66} {'codec':<13} {'bytes':>10} {'ratio':>7} {'enc ms':>8} {'dec ms':>8}  exact"]
    for label, m in rows:
        lines.append(
            f"{label:<66} {m.name:<13} {m.bytes:>10} {m.ratio:>7.3f} {m.encode_s * 1e3:>8.1f} {m.decode_s * 1e3:>8.1f}"
            f"  {'yes' if m.exact else 'NO'}"
        )
    return "\n".join(lines)


def as_records(rows: Sequence[Measurement]) -> list[dict[str, object]]:
    return [
        {
            "codec": m.name,
            "bytes": m.bytes,
            "ratio": round(m.ratio, 4),
            "encode_ms": round(m.encode_s * 1e3, 2),
            "decode_ms": round(m.decode_s * 1e3, 2),
            "exact": m.exact,
        }
        for m in rows
    ]


def format_table(rows: Sequence[Measurement], title: str) -> str:
    lines = [title, f"{'codec':<16} {'bytes':>10} {'ratio':>7} {'encode ms':>10} {'decode ms':>10}  exact"]
    for r in as_records(rows):
        lines.append(
            f"{r['codec']:<16} {r['bytes']:>10} {r['ratio']:>7.3f} {r['encode_ms']:>10.1f} {r['decode_ms']:>10.1f}"
            f"  {'yes' if r['exact'] else 'NO'}"
        )
    lines.append("ratio = payload bytes / raw pixel bytes; times: median of repeats on this machine (load-dependent)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_wire", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--image",
        required=True,
        type=Path,
        help="PNG, JPEG or .npy (uint8 HxWx3) frame; 'sample': the sample camera bag's first 1280x960 JPEG frame",
    )
    ap.add_argument(
        "--json", action="store_true", help="print one JSON list of {codec, bytes, ratio, encode_ms, decode_ms, exact}"
    )
    ap.add_argument("--repeat", type=int, default=3, help="timed repeats per codec (median)")
    ap.add_argument("--tiles", action="store_true", help="also a table for occupancy, sparse and activation tiles")
    ap.add_argument(
        "--profile",
        metavar="SIDE",
        help="print one CodecProfile JSON per image codec measured on this frame (cost-model data for SIDE)",
    )
    args = ap.parse_args(argv)
    try:
        rgb, file_bytes = load_frame(args.image)
    except (OSError, ValueError) as e:
        print(f"bench_wire: {e}", file=sys.stderr)
        return 2
    if args.profile:
        from intradp_ros.core.codecs.profile import profile_codecs

        x = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None])
        for prof in profile_codecs([x], IMAGE_CODECS, args.profile, max(1, args.repeat)):
            print(prof.to_json())
        return 0
    rows = bench_frame(rgb, file_bytes, max(1, args.repeat))
    if args.json:
        print(json.dumps(as_records(rows)))
    else:
        h, w = rgb.shape[:2]
        print(format_table(rows, f"{args.image} ({w}x{h}, raw {rgb.nbytes} bytes)"))
    if args.tiles:
        tiles = bench_tiles(max(1, args.repeat))
        print(format_tiles(tiles), file=sys.stderr if args.json else sys.stdout)
        rows = rows + [m for _label, m in tiles]
    return 0 if all(m.exact for m in rows) else 1
