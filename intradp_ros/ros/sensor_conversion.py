"""Sensor messages <-> model inputs and model results -> result messages, with numpy views (no per-pixel loops).

Every converter validates the message and raises `SensorConversionError` with a clear reason; a node logs it and
drops the frame. Supported: sensor_msgs/Image in every encoding of models.image_encodings (rgb8, bgr8, rgba8,
bgra8, mono8, mono16, the four bayer_* patterns, yuv422/uyvy, yuyv); sensor_msgs/CompressedImage (image_transport's
"compressed": JPEG or PNG, decoded by core/codecs/camera.py so the server can decode the same bytes identically);
sensor_msgs/PointCloud2 with float32 x, y, z
fields at any offsets and point step (either byte order).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sensor_msgs.msg import CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Float64MultiArray, Header, MultiArrayDimension

from intradp_ros.models.image_encodings import MALFORMED, ImageEncodingError, decode_image
from intradp_ros.models.kapao_postprocess import Pose
from intradp_ros.models.letterbox import LetterboxInfo, letterbox
from intradp_ros.models.voxels import AGRNAV_GRID, CompletedVoxels, VoxelGridSpec, grid_to_model_input, voxelize
from intradp_ros.msg import CompletedVoxels as CompletedVoxelsMsg
from intradp_ros.msg import HumanPose, HumanPoses, Keypoint


class SensorConversionError(ValueError):
    """A sensor message that cannot be turned into a model input; the frame must be dropped. `kind` says why
    (models.image_encodings.UNSUPPORTED or MALFORMED), so nodes count unsupported encodings apart."""

    def __init__(self, message: str, kind: str = MALFORMED) -> None:
        super().__init__(message)
        self.kind = kind


def image_to_rgb(msg: Image) -> np.ndarray:
    """HxWx3 uint8 RGB array from an Image of any encoding in models.image_encodings.SUPPORTED_ENCODINGS."""
    data = msg.data if isinstance(msg.data, (bytes, bytearray, memoryview)) else bytes(msg.data)
    try:
        return decode_image(msg.encoding, msg.height, msg.width, msg.step, data, bool(msg.is_bigendian))
    except ImageEncodingError as e:
        raise SensorConversionError(str(e), e.kind) from None


def rgb_to_image(rgb: np.ndarray, header: Header | None = None, encoding: str = "rgb8") -> Image:
    """Image message from an HxWx3 uint8 RGB array (rgb8 or bgr8), e.g. for tests and replay tools."""
    arr = np.asarray(rgb, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise SensorConversionError(f"expected an HxWx3 array, got {arr.shape}")
    if encoding == "bgr8":
        arr = arr[..., ::-1]
    elif encoding != "rgb8":
        raise SensorConversionError(f"rgb_to_image writes rgb8 or bgr8, not '{encoding}'")
    msg = Image(
        header=header or Header(),
        height=arr.shape[0],
        width=arr.shape[1],
        encoding=encoding,
        is_bigendian=0,
        step=arr.shape[1] * 3,
    )
    msg.data = np.ascontiguousarray(arr).tobytes()
    return msg


def image_to_kapao_input(msg: Image, input_hw: Sequence[int]) -> tuple[torch.Tensor, LetterboxInfo]:
    """KAPAO graph input uint8 [1, 3, H, W] (letterboxed RGB) and the placement to map results back."""
    return letterbox(image_to_rgb(msg), input_hw)


# ------------------------------------------------ sensor_msgs/CompressedImage (camera passthrough, docs/wire.md)
COMPRESSED_SUFFIX = "/compressed"  # image_transport: <image topic>/compressed carries CompressedImage
COMPRESSED_FORMATS = {"jpeg": "JPEG", "jpg": "JPEG", "png": "PNG"}


def compressed_topic(image_topic: str) -> str:
    """image_transport's compressed topic of an image topic (unchanged if it already is one)."""
    return image_topic if image_topic.endswith(COMPRESSED_SUFFIX) else image_topic.rstrip("/") + COMPRESSED_SUFFIX


def compressed_image_bytes(msg: CompressedImage) -> bytes:
    """The JPEG/PNG file of a CompressedImage; its `format` ("jpeg", "png" or image_transport's
    "rgb8; jpeg compressed bgr8") must name what the bytes are."""
    from intradp_ros.core.codecs.camera import sniff_format

    data = msg.data if isinstance(msg.data, bytes) else bytes(msg.data)
    if not data:
        raise SensorConversionError("compressed image has no data")
    named = {v for k, v in COMPRESSED_FORMATS.items() if k in str(msg.format).lower()}
    actual = sniff_format(data)
    if actual is None:
        raise SensorConversionError(f"compressed image (format '{msg.format}') is neither JPEG nor PNG")
    if named and actual not in named:
        raise SensorConversionError(f"compressed image says '{msg.format}' but holds {actual}")
    return data


def compressed_to_kapao_input(
    msg: CompressedImage, input_hw: Sequence[int], max_pixels: int
) -> tuple[torch.Tensor, LetterboxInfo, np.ndarray]:
    """KAPAO input (tagged with the file for passthrough), placement, decoded HxWx3 RGB frame."""
    from intradp_ros.models.camera_input import camera_model_input

    try:
        return camera_model_input(compressed_image_bytes(msg), input_hw, max_pixels)
    except ValueError as e:
        raise SensorConversionError(str(e)) from None


def rgb_to_compressed(
    rgb: np.ndarray, header: Header | None = None, fmt: str = "jpeg", quality: int = 90
) -> CompressedImage:
    """CompressedImage (JPEG at `quality`, or PNG) of an HxWx3 uint8 RGB array, e.g. for tests and sample bags."""
    import io

    from PIL import Image as PILImage

    arr = np.asarray(rgb, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise SensorConversionError(f"expected an HxWx3 array, got {arr.shape}")
    if fmt not in ("jpeg", "png"):
        raise SensorConversionError(f"rgb_to_compressed writes jpeg or png, not '{fmt}'")
    buf = io.BytesIO()
    if fmt == "jpeg":
        PILImage.fromarray(arr, "RGB").save(buf, "JPEG", quality=int(quality))
    else:
        PILImage.fromarray(arr, "RGB").save(buf, "PNG", compress_level=1)
    return CompressedImage(header=header or Header(), format=fmt, data=buf.getvalue())


def _xyz_dtype(msg: PointCloud2) -> np.dtype:
    """Structured dtype picking x, y, z float32 out of one point of `point_step` bytes."""
    fields = {f.name: f for f in msg.fields}
    order = ">" if msg.is_bigendian else "<"
    names, offsets = [], []
    for name in ("x", "y", "z"):
        f = fields.get(name)
        if f is None:
            raise SensorConversionError(f"point cloud has no '{name}' field (fields: {sorted(fields)})")
        if f.datatype != PointField.FLOAT32 or f.count not in (0, 1):
            raise SensorConversionError(
                f"point cloud field '{name}' must be one float32 (datatype 7), "
                f"got datatype {f.datatype} count {f.count}"
            )
        if f.offset < 0 or f.offset + 4 > msg.point_step:
            raise SensorConversionError(f"field '{name}' at offset {f.offset} does not fit point_step {msg.point_step}")
        names.append(name)
        offsets.append(int(f.offset))
    return np.dtype(
        {"names": names, "formats": [order + "f4"] * 3, "offsets": offsets, "itemsize": int(msg.point_step)}
    )


def pointcloud2_to_xyz(msg: PointCloud2) -> np.ndarray:
    """[N, 3] float32 points of a PointCloud2 (NaN points kept; voxelisation drops them)."""
    h, w, step, row_step = int(msg.height), int(msg.width), int(msg.point_step), int(msg.row_step)
    dtype = _xyz_dtype(msg)
    if h * w == 0:
        return np.zeros((0, 3), np.float32)
    if row_step < w * step:
        raise SensorConversionError(f"row_step {row_step} is smaller than width*point_step = {w * step}")
    data = msg.data if isinstance(msg.data, (bytes, bytearray, memoryview)) else bytes(msg.data)
    if len(data) < row_step * h:
        raise SensorConversionError(
            f"point cloud data has {len(data)} bytes, expected row_step*height = {row_step * h}"
        )
    raw = np.frombuffer(data, dtype=np.uint8, count=row_step * h).reshape(h, row_step)[:, : w * step]
    points = np.ascontiguousarray(raw).view(dtype).reshape(-1)
    xyz = np.empty((points.size, 3), np.float32)
    xyz[:, 0], xyz[:, 1], xyz[:, 2] = points["x"], points["y"], points["z"]
    return xyz


def xyz_to_pointcloud2(points: np.ndarray, header: Header | None = None) -> PointCloud2:
    """Unorganised PointCloud2 (x, y, z float32, 12-byte points) from [N, 3] points."""
    pts = np.ascontiguousarray(np.asarray(points, dtype="<f4").reshape(-1, 3))
    msg = PointCloud2(
        header=header or Header(),
        height=1,
        width=pts.shape[0],
        is_bigendian=False,
        point_step=12,
        row_step=12 * pts.shape[0],
        is_dense=bool(np.isfinite(pts).all()),
    )
    msg.fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate("xyz")]
    msg.data = pts.tobytes()
    return msg


def pointcloud2_to_occupancy(msg: PointCloud2, spec: VoxelGridSpec = AGRNAV_GRID) -> torch.Tensor:
    """SCONet graph input uint8 [1, 1, X, Z, Y] from a cloud (out-of-range and NaN points dropped)."""
    return grid_to_model_input(voxelize(pointcloud2_to_xyz(msg), spec))


def poses_to_msg(poses: Sequence[Pose], header: Header | None = None, request_id: int = 0) -> HumanPoses:
    """HumanPoses message from post-processed KAPAO poses."""
    out = HumanPoses(header=header or Header(), request_id=int(request_id))
    for p in poses:
        kps = [Keypoint(x=float(k[0]), y=float(k[1]), confidence=float(k[2])) for k in np.asarray(p.keypoints)]
        out.poses.append(HumanPose(box=[float(v) for v in p.box], score=float(p.score), keypoints=kps))
    return out


def completed_voxels_to_msg(
    result: CompletedVoxels, header: Header | None = None, request_id: int = 0
) -> CompletedVoxelsMsg:
    """CompletedVoxels message (flat (x, y, z) indices and classes as raw bytes)."""
    spec = result.spec
    msg = CompletedVoxelsMsg(
        header=header or Header(),
        request_id=int(request_id),
        voxel_size=float(spec.voxel_size),
        origin=[float(v) for v in spec.origin],
        grid_size=[int(v) for v in spec.size_xyz],
    )
    msg.indices = result.indices.astype(np.uint32).tolist()
    msg.classes = result.classes.astype(np.uint8).tobytes()
    return msg


def completed_voxels_to_planner_msg(result: CompletedVoxels) -> Float64MultiArray:
    """AGRNav planner's /non_intersection_coordinates: (x, y, z) voxel index triples, flattened, as float64."""
    msg = Float64MultiArray()
    msg.layout.dim = [
        MultiArrayDimension(label="voxels", size=len(result.indices), stride=3 * len(result.indices)),
        MultiArrayDimension(label="xyz", size=3, stride=3),
    ]
    msg.data = result.planner_list().tolist()
    return msg


def completed_voxels_to_pointcloud2(result: CompletedVoxels, header: Header | None = None) -> PointCloud2:
    """PointCloud2 of the completed voxels' centres (metres, in the grid's frame) with a `label` field (uint32
    at offset 12, the SCONet class id 1..19, as pcl::PointXYZL's `label`), so rviz can colour the cloud by
    class (Color Transformer: Intensity, Channel Name: label)."""
    centers = result.centers()
    n = centers.shape[0]
    rec = np.zeros(n, dtype=np.dtype({"names": ["x", "y", "z", "label"], "formats": ["<f4", "<f4", "<f4", "<u4"]}))
    rec["x"], rec["y"], rec["z"] = centers[:, 0], centers[:, 1], centers[:, 2]
    rec["label"] = result.classes.astype(np.uint32)
    msg = PointCloud2(
        header=header or Header(),
        height=1,
        width=n,
        is_bigendian=False,
        point_step=16,
        row_step=16 * n,
        is_dense=True,
    )
    msg.fields = [PointField(name=c, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, c in enumerate("xyz")]
    msg.fields.append(PointField(name="label", offset=12, datatype=PointField.UINT32, count=1))
    msg.data = rec.tobytes()
    return msg
