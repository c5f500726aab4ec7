"""sensor_msgs <-> model inputs and results -> messages (no master needed)."""

import struct

import numpy as np
import pytest
import torch
from sensor_msgs.msg import Image, PointCloud2, PointField
from std_msgs.msg import Header

from intradp_ros.models.kapao_postprocess import Pose
from intradp_ros.models.voxels import CompletedVoxels, VoxelGridSpec
from intradp_ros.ros.sensor_conversion import (
    SensorConversionError,
    completed_voxels_to_msg,
    completed_voxels_to_planner_msg,
    completed_voxels_to_pointcloud2,
    image_to_kapao_input,
    image_to_rgb,
    pointcloud2_to_occupancy,
    pointcloud2_to_xyz,
    poses_to_msg,
    rgb_to_image,
    xyz_to_pointcloud2,
)


def _frame(h=6, w=8):
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 0] = np.arange(w)[None, :] * 10
    rgb[..., 1] = np.arange(h)[:, None] * 20
    rgb[..., 2] = 5
    return rgb


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_color_images_convert_to_rgb(encoding):
    rgb = _frame()
    assert np.array_equal(image_to_rgb(rgb_to_image(rgb, encoding=encoding)), rgb)


def test_padded_rows_and_mono_images():
    rgb = _frame()
    msg = rgb_to_image(rgb)
    padded = np.zeros((6, 8 * 3 + 4), np.uint8)
    padded[:, :24] = rgb.reshape(6, 24)
    msg.step, msg.data = 28, padded.tobytes()
    assert np.array_equal(image_to_rgb(msg), rgb)
    mono = Image(height=2, width=3, encoding="mono8", step=3, data=bytes([0, 50, 100, 150, 200, 250]))
    out = image_to_rgb(mono)
    assert out.shape == (2, 3, 3) and out[1, 2].tolist() == [250, 250, 250]


def test_error_kind_tells_unsupported_from_malformed():
    msg = rgb_to_image(_frame())
    msg.encoding = "32FC1"
    with pytest.raises(SensorConversionError) as unsupported:
        image_to_rgb(msg)
    msg = rgb_to_image(_frame())
    msg.data = msg.data[:-1]
    with pytest.raises(SensorConversionError) as malformed:
        image_to_rgb(msg)
    assert (unsupported.value.kind, malformed.value.kind) == ("unsupported_encoding", "malformed")


@pytest.mark.parametrize(
    "mutate,reason",
    [
        (lambda m: setattr(m, "encoding", "32FC1"), "encoding '32FC1' is not supported"),
        (lambda m: setattr(m, "encoding", "16UC1"), "not supported"),
        (lambda m: setattr(m, "data", m.data[:-1]), "expected step\\*height"),
        (lambda m: setattr(m, "step", 10), "step 10 is smaller"),
        (lambda m: setattr(m, "width", 0), "no pixels"),
    ],
)
def test_bad_images_are_rejected_clearly(mutate, reason):
    msg = rgb_to_image(_frame())
    mutate(msg)
    with pytest.raises(SensorConversionError, match=reason):
        image_to_rgb(msg)


def test_image_to_kapao_input_letterboxes():
    x, info = image_to_kapao_input(rgb_to_image(_frame(48, 64), encoding="bgr8"), (64, 64))
    assert x.shape == (1, 3, 64, 64) and x.dtype == torch.uint8 and info.pad_y == 8
    assert x[0, :, 8 + 2, 3].tolist() == [30, 40, 5]


def _cloud(points, point_step=16, offsets=(0, 4, 8), big_endian=False, row_pad=0, height=1):
    """A cloud with x, y, z at the given offsets plus an 'intensity' field, optionally padded rows."""
    order = ">" if big_endian else "<"
    n = len(points)
    width = n // height
    row_step = width * point_step + row_pad
    buf = bytearray(row_step * height)
    for i, p in enumerate(points):
        r, c = divmod(i, width)
        base = r * row_step + c * point_step
        for off, v in zip(offsets, p):
            struct.pack_into(order + "f", buf, base + off, v)
    fields = [PointField(name=n_, offset=o, datatype=PointField.FLOAT32, count=1) for n_, o in zip("xyz", offsets)]
    fields.append(PointField(name="intensity", offset=12, datatype=PointField.FLOAT32, count=1))
    return PointCloud2(
        height=height,
        width=width,
        fields=fields,
        is_bigendian=big_endian,
        point_step=point_step,
        row_step=row_step,
        data=bytes(buf),
        is_dense=True,
    )


@pytest.mark.parametrize(
    "kw", [{}, {"point_step": 32, "offsets": (20, 4, 24)}, {"big_endian": True}, {"row_pad": 8, "height": 2}]
)
def test_point_clouds_with_any_layout(kw):
    pts = [(1.0, 2.0, 3.0), (-4.5, 0.25, 1.0), (0.125, -0.5, 0.0625), (7.0, 8.0, 9.0)]
    assert pointcloud2_to_xyz(_cloud(pts, **kw)).tolist() == [list(p) for p in pts]


def test_cloud_to_occupancy_and_round_trip():
    pts = np.array([[0.05, 0.05, 0.05], [100.0, 0.0, 0.0]], np.float32)  # the second is out of range
    msg = xyz_to_pointcloud2(pts)
    assert np.array_equal(pointcloud2_to_xyz(msg), pts)
    occ = pointcloud2_to_occupancy(msg)
    assert occ.shape == (1, 1, 256, 32, 256) and int(occ.sum()) == 1 and occ[0, 0, 100, 1, 100] == 1


@pytest.mark.parametrize(
    "mutate,reason",
    [
        (lambda m: m.fields.pop(2), "no 'z' field"),
        (lambda m: setattr(m.fields[0], "datatype", PointField.FLOAT64), "must be one float32"),
        (lambda m: setattr(m.fields[1], "offset", 14), "does not fit point_step"),
        (lambda m: setattr(m, "data", m.data[:-1]), "expected row_step\\*height"),
        (lambda m: setattr(m, "row_step", 8), "row_step 8 is smaller"),
    ],
)
def test_malformed_clouds_are_rejected_clearly(mutate, reason):
    msg = _cloud([(1.0, 2.0, 3.0), (4.0, 5.0, 6.0)])
    mutate(msg)
    with pytest.raises(SensorConversionError, match=reason):
        pointcloud2_to_xyz(msg)


def test_result_messages():
    kps = np.zeros((17, 3), np.float32)
    kps[0] = (10, 20, 0.9)
    msg = poses_to_msg([Pose(np.array([1, 2, 3, 4], np.float32), 0.8, kps)], Header(frame_id="cam"), request_id=7)
    assert msg.request_id == 7 and len(msg.poses) == 1 and len(msg.poses[0].keypoints) == 17
    assert msg.poses[0].keypoints[0].x == 10 and msg.poses[0].keypoints[0].confidence == pytest.approx(0.9)

    spec = VoxelGridSpec(0.5, (0.0, 0.0, 0.0), (8, 4, 2))
    res = CompletedVoxels(np.array([17, 54], np.uint32), np.array([19, 7], np.uint8), spec)
    cv = completed_voxels_to_msg(res, request_id=3)
    assert list(cv.indices) == [17, 54] and bytes(cv.classes) == bytes([19, 7]) and list(cv.grid_size) == [8, 4, 2]
    planner = completed_voxels_to_planner_msg(res)
    assert list(planner.data) == [2.0, 0.0, 1.0, 6.0, 3.0, 0.0] and planner.layout.dim[0].size == 2
    cloud = completed_voxels_to_pointcloud2(res)
    assert pointcloud2_to_xyz(cloud).tolist() == [[1.25, 0.25, 0.75], [3.25, 1.75, 0.25]]
    label = [f for f in cloud.fields if f.name == "label"]
    assert label and label[0].datatype == PointField.UINT32 and cloud.point_step == 16
    labels = np.frombuffer(cloud.data, np.uint8).reshape(2, 16)[:, label[0].offset : label[0].offset + 4]
    assert np.ascontiguousarray(labels).view("<u4").ravel().tolist() == [19, 7]  # the class ids, for rviz
    for m in (msg, cv, planner, cloud):  # they serialise as ROS messages
        from io import BytesIO

        buf = BytesIO()
        m.serialize(buf)
        assert buf.tell() > 0
