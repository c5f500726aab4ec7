"""Unit tests of the sample-data generators: deterministic, right sizes and encodings, points inside the grid."""

from dataclasses import replace

import numpy as np
import pytest
import rosbag

from intradp_ros.eval import sample_data as sd
from intradp_ros.models.voxels import AGRNAV_GRID, voxel_indices
from intradp_ros.ros.sensor_conversion import image_to_rgb, pointcloud2_to_xyz


@pytest.fixture(scope="module")
def picture_file(tmp_path_factory):
    from PIL import Image

    rng = np.random.default_rng(3)
    path = tmp_path_factory.mktemp("pic") / "pic.png"
    Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(path)
    return str(path)


def test_bundled_person_picture_loads_offline() -> None:
    pytest.importorskip("skimage", reason="scikit-image ships the sample pictures")
    img = sd.load_picture("astronaut")
    assert img.shape == (512, 512, 3) and img.dtype == np.uint8
    gray = sd.load_picture("camera")
    assert gray.shape == (512, 512, 3) and (gray[..., 0] == gray[..., 2]).all()


def test_bad_picture_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(sd.SampleDataError, match="cannot read"):
        sd.load_picture(str(tmp_path / "missing.png"))


def test_frames_are_4_3_shifted_views_of_one_picture(picture_file) -> None:
    frames = list(sd.camera_frames(sd.load_picture(picture_file), frames=8, shift_px=8))
    assert len(frames) == 8
    assert all(f.shape == (480, 640, 3) and f.dtype == np.uint8 for f in frames)
    assert all(not np.array_equal(a, b) for a, b in zip(frames, frames[1:]))
    offsets = sd.frame_offsets(8, 8)
    assert max(max(abs(dx), abs(dy)) for dx, dy in offsets) == 8
    # frame i is frame 0 moved by (dx_i - dx_0, dy_i - dy_0): the overlap is pixel-identical
    (dx0, dy0), (dx2, dy2) = offsets[0], offsets[2]
    ox, oy = dx2 - dx0, dy2 - dy0
    a = frames[0][max(oy, 0) : 480 + min(oy, 0), max(ox, 0) : 640 + min(ox, 0)]
    b = frames[2][max(-oy, 0) : 480 + min(-oy, 0), max(-ox, 0) : 640 + min(-ox, 0)]
    assert np.array_equal(a, b)


def test_image_bag_round_trip(tmp_path, picture_file) -> None:
    path = sd.write_image_bag(tmp_path / "cam.bag", picture=picture_file, frames=3, rate_hz=10.0)
    expected = list(sd.camera_frames(sd.load_picture(picture_file), frames=3))
    with rosbag.Bag(str(path)) as bag:
        assert bag.get_type_and_topic_info().topics[sd.IMAGE_TOPIC].msg_type == "sensor_msgs/Image"
        msgs = list(bag.read_messages(topics=[sd.IMAGE_TOPIC]))
    assert len(msgs) == 3
    stamps = [m.message.header.stamp.to_sec() for m in msgs]
    assert stamps == pytest.approx([sd.BASE_STAMP_S + i * 0.1 for i in range(3)])
    for (_, msg, _), frame in zip(msgs, expected):
        assert (msg.encoding, msg.width, msg.height, msg.step) == ("rgb8", 640, 480, 640 * 3)
        assert isinstance(msg.data, bytes) and len(msg.data) == 640 * 480 * 3
        assert np.array_equal(image_to_rgb(msg), frame)


def test_compressed_topic_holds_noisy_native_photo_jpegs(tmp_path, picture_file) -> None:
    pytest.importorskip("skimage", reason="scikit-image ships the photographs")
    from intradp_ros.core.codecs.camera import decode_camera_bytes
    from intradp_ros.ros.sensor_conversion import compressed_image_bytes

    path = sd.write_image_bag(tmp_path / "cam.bag", picture=picture_file, frames=2, rate_hz=10.0)
    with rosbag.Bag(str(path)) as bag:
        assert bag.get_type_and_topic_info().topics[sd.COMPRESSED_TOPIC].msg_type == "sensor_msgs/CompressedImage"
        msgs = [m.message for m in bag.read_messages(topics=[sd.COMPRESSED_TOPIC])]
    assert len(msgs) == 2 and all(m.format == "jpeg" for m in msgs)
    assert [m.header.stamp.to_sec() for m in msgs] == pytest.approx([sd.BASE_STAMP_S, sd.BASE_STAMP_S + 0.1])
    rgb = decode_camera_bytes(compressed_image_bytes(msgs[0]), 1 << 24)
    assert rgb.shape == (960, 1280, 3)
    # a camera-like JPEG of busy photographs: 100-600 kB, far from the raw 3.69 MB and from a flat picture's size
    assert all(100_000 < len(m.data) < 600_000 for m in msgs)


def test_photo_frames_are_native_pixels_plus_seeded_noise() -> None:
    pytest.importorskip("skimage", reason="scikit-image ships the photographs")
    canvas = sd.photo_canvas(8)
    a, b = list(sd.photo_frames(2, 8, seed=1)), list(sd.photo_frames(2, 8, seed=1))
    assert np.array_equal(a[0], b[0]) and a[0].shape == (960, 1280, 3)
    assert not np.array_equal(a[0], list(sd.photo_frames(1, 8, seed=2))[0])
    dx, dy = sd.frame_offsets(2, 8)[0]
    clean = canvas[8 + dy : 8 + dy + 960, 8 + dx : 8 + dx + 1280].astype(int)
    err = a[0].astype(int) - clean
    assert 0.5 < err.std() < 6 and abs(err.mean()) < 0.5  # sensor noise of a few DN, no bias, not upscaled away
    import skimage
    from PIL import Image

    moto = np.asarray(Image.open(f"{skimage.__path__[0]}/data/motorcycle_left.png").convert("RGB"))
    assert np.array_equal(canvas[:500, :741], moto[:500, :741])  # native pixels, unscaled


def test_scene_is_seeded_and_has_every_kind_of_object() -> None:
    a, b = sd.make_scene(), sd.make_scene()
    assert np.array_equal(a, b)
    assert not np.array_equal(a, sd.make_scene(replace(sd.SceneConfig(), seed=1)))
    assert a.shape == AGRNAV_GRID.size_xyz and a.dtype == np.uint8
    assert a[:, :, 0].all()  # ground
    assert a[:, :, 20:].any()  # tall things: walls, poles, trees
    # the robot's surroundings are free above the ground
    centre = (np.array([0.0, 0.0]) - np.array(AGRNAV_GRID.origin[:2])) / AGRNAV_GRID.voxel_size
    c = centre.astype(int)
    r = int(sd.SceneConfig().clear_radius / AGRNAV_GRID.voxel_size) - 1
    assert not a[c[0] - r // 2 : c[0] + r // 2, c[1] - r // 2 : c[1] + r // 2, 1:].any()


def test_cloud_frames_are_voxel_centres_inside_the_grid() -> None:
    cfg = replace(sd.SceneConfig(), frames=4)
    frames = list(sd.cloud_frames(cfg))
    assert len(frames) == 4
    assert [len(f) for f in frames] == [len(f) for f in sd.cloud_frames(cfg)]  # deterministic
    for pts, (vx, vy) in zip(frames, sd.viewpoints(cfg)):
        assert pts.dtype == np.float32 and pts.ndim == 2 and pts.shape[1] == 3 and len(pts) > 1000
        assert len(voxel_indices(pts)) == len(pts)  # all in bounds
        frac = (pts - np.asarray(AGRNAV_GRID.origin, np.float32)) / AGRNAV_GRID.voxel_size % 1.0
        assert np.allclose(frac, 0.5, atol=1e-3)  # voxel centres
        assert np.hypot(pts[:, 0] - vx, pts[:, 1] - vy).max() <= cfg.local_range + 1e-4
    assert not np.array_equal(frames[0], frames[-1])  # the viewpoint moves


def test_cloud_bag_is_small_and_decodes(tmp_path) -> None:
    cfg = replace(sd.SceneConfig(), frames=3)
    path = sd.write_cloud_bag(tmp_path / "cloud.bag", cfg)
    expected = list(sd.cloud_frames(cfg))
    with rosbag.Bag(str(path)) as bag:
        msgs = [m.message for m in bag.read_messages(topics=[sd.CLOUD_TOPIC])]
    assert len(msgs) == 3
    for msg, pts in zip(msgs, expected):
        assert [f.name for f in msg.fields] == ["x", "y", "z"] and msg.point_step == 12
        assert np.array_equal(pointcloud2_to_xyz(msg), pts)
    assert path.stat().st_size < 1_000_000  # 3 frames; the default 20 are ~2.5 MB


def test_ensure_sample_bags_makes_once_then_reuses(tmp_path, picture_file) -> None:
    cfg = replace(sd.SceneConfig(), frames=2)
    paths = sd.ensure_sample_bags(tmp_path, picture=picture_file, image_frames=2, cloud=cfg)
    assert set(paths) == {"camera", "cloud"} and all(p.is_file() for p in paths.values())
    mtimes = {k: p.stat().st_mtime_ns for k, p in paths.items()}
    again = sd.ensure_sample_bags(tmp_path, picture=picture_file, image_frames=2, cloud=cfg)
    assert again == paths and {k: p.stat().st_mtime_ns for k, p in again.items()} == mtimes
    assert not list(tmp_path.glob("*.part"))
