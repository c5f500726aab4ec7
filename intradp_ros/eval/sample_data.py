"""Sample rosbags for demos and tests, made on this machine (nothing is downloaded, nothing large is committed).

- Camera bag: `sensor_msgs/Image` rgb8 640x480 (4:3) on `/camera/image_raw`, 30 frames at 10 Hz, cut from a
  picture with a person in it that a package ships: scikit-image's `data.astronaut()` (default) or
  `data.camera()` (the cameraman), or any image file. Each frame is the same scaled picture seen through a
  window that moves on a small circle (a few pixels), so frames differ deterministically. The same bag also
  holds `sensor_msgs/CompressedImage` JPEG 1280x960 frames on `/camera/image_raw/compressed` (image_transport's
  compressed topic) made from native-resolution photographs that scikit-image ships (never upscaled: a scaled-up
  thumbnail compresses unrealistically well), panned like the Image frames, with seeded camera-like noise
  (shot noise growing with brightness plus read noise) and JPEG quality 90 / 4:2:0 like a camera driver.
- Point-cloud bag: `sensor_msgs/PointCloud2` (x, y, z float32) on `/sdf_map/occupancy_inflate`, 20 frames: the
  occupied voxel centres of a seeded procedural scene (ground, walls, boxes, poles, trees; the area around the
  robot at the origin is kept free) inside AGRNav's SCONet grid (voxel 0.1 m, origin (-10, -10, -0.1),
  256 x 256 x 32): object surfaces (what a depth sensor sees) inflated by one voxel in x and y like
  ego-planner's inflated map, within a local-map range of a viewpoint that moves away from the origin.

Everything is deterministic (fixed stamps, seeded scene); `ensure_sample_bags` writes the bags once into a cache
folder ($INTRADP_CACHE/sample_data, default ~/.cache/intradp_ros/sample_data) under names that carry the
generator version and settings, and returns the existing files afterwards.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from intradp_ros.core import cache
from intradp_ros.models.sample_scene import (
    DEFAULT_SCENE,
    SceneConfig,
    SceneError,
    cloud_frames,
    make_scene,
    viewpoints,
)

__all__ = [
    "GENERATOR_VERSION",
    "IMAGE_TOPIC",
    "CLOUD_TOPIC",
    "SampleDataError",
    "default_cache_dir",
    "load_picture",
    "camera_frames",
    "frame_offsets",
    "write_image_bag",
    "COMPRESSED_TOPIC",
    "photo_canvas",
    "photo_frames",
    "SceneConfig",
    "SceneError",
    "make_scene",
    "viewpoints",
    "cloud_frames",
    "write_cloud_bag",
    "ensure_sample_bags",
]

GENERATOR_VERSION = 2  # 2: the camera bag gained the 1280x960 CompressedImage topic
IMAGE_TOPIC = "/camera/image_raw"
COMPRESSED_TOPIC = "/camera/image_raw/compressed"
PHOTO_SIZE = (960, 1280)  # H, W of the compressed frames
JPEG_QUALITY = 90
CLOUD_TOPIC = "/sdf_map/occupancy_inflate"
BASE_STAMP_S = 1_700_000_000  # fixed first header stamp: bags are the same on every machine
PICTURES = ("astronaut", "camera")


class SampleDataError(RuntimeError):
    """A sample picture or bag that cannot be made (missing package, unreadable file, bad settings)."""


def default_cache_dir() -> Path:
    """$INTRADP_CACHE/sample_data, else ~/.cache/intradp_ros/sample_data (same root as the plan-table cache)."""
    return cache.default_cache_dir("sample_data")


# ---- camera frames ---------------------------------------------------------------------------------------------
def load_picture(name: str = "astronaut") -> np.ndarray:
    """HxWx3 uint8 RGB: scikit-image's bundled 'astronaut' or 'camera' picture, or an image file path."""
    if name in PICTURES:
        try:
            from skimage import data
        except ImportError as err:
            raise SampleDataError(
                f"picture {name!r} comes with scikit-image (pip install scikit-image): {err}"
            ) from None
        img = np.asarray(getattr(data, name)())
    else:
        try:
            from PIL import Image

            with Image.open(name) as im:
                img = np.asarray(im.convert("RGB"))
        except (OSError, ValueError) as err:
            raise SampleDataError(f"cannot read picture {name!r}: {err}") from None
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] < 3 or img.dtype != np.uint8:
        raise SampleDataError(f"picture {name!r} is not an RGB uint8 image (shape {img.shape}, {img.dtype})")
    return np.ascontiguousarray(img[:, :, :3])


def frame_offsets(frames: int, shift_px: int) -> list[tuple[int, int]]:
    """(dx, dy) of each frame's window: a circle of radius `shift_px` pixels, one turn over the sequence."""
    return [
        (
            int(round(shift_px * math.cos(2 * math.pi * i / frames))),
            int(round(shift_px * math.sin(2 * math.pi * i / frames))),
        )
        for i in range(frames)
    ]


def _cover(picture: np.ndarray, width: int, height: int) -> np.ndarray:
    """The picture scaled (bilinear, aspect kept) so it covers width x height."""
    from PIL import Image

    h, w = picture.shape[:2]
    scale = max(width / w, height / h)
    size = (max(width, int(math.ceil(w * scale))), max(height, int(math.ceil(h * scale))))
    return np.asarray(Image.fromarray(picture).resize(size, Image.BILINEAR))


def camera_frames(
    picture: np.ndarray, frames: int = 30, width: int = 640, height: int = 480, shift_px: int = 8
) -> Iterator[np.ndarray]:
    """`frames` height x width x 3 uint8 views of the scaled picture, each window shifted by `frame_offsets`.

    The window is centred horizontally and kept near the top (where a portrait's head is).
    """
    if frames < 1 or width < 1 or height < 1 or shift_px < 0:
        raise SampleDataError(f"bad frame settings: frames={frames}, {width}x{height}, shift {shift_px}")
    big = _cover(picture, width + 2 * shift_px, height + 2 * shift_px)
    x0 = (big.shape[1] - width) // 2
    y0 = shift_px
    for dx, dy in frame_offsets(frames, shift_px):
        yield big[y0 + dy : y0 + dy + height, x0 + dx : x0 + dx + width]


# Native-resolution photographs shipped in scikit-image (file, crop box x0, y0, x1, y1 in the file's own pixels),
# laid side by side, without scaling, into a 1296x976 canvas (1280x960 plus a pan margin of 8 px): a street scene,
# a person, a cat, a cup on a table, a fundus photograph (the only >= 1280 px photo the package has) and a deep
# field telescope image. Sizes of the files: motorcycle_left 741x500, astronaut 512x512, chelsea 451x300,
# coffee 600x400, retina 1411x1411, hubble_deep_field 1000x872.
PHOTO_TILES = (
    ("motorcycle_left.png", (0, 0, 741, 500), (0, 0)),
    ("astronaut.png", (0, 0, 512, 500), (741, 0)),
    ("coffee.png", (0, 0, 600, 400), (0, 500)),
    ("chelsea.png", (0, 0, 451, 300), (600, 500)),
    ("retina.jpg", (300, 300, 545, 776), (1051, 500)),
    ("hubble_deep_field.jpg", (0, 0, 451, 176), (600, 800)),
    ("hubble_deep_field.jpg", (0, 300, 600, 376), (0, 900)),
    ("retina.jpg", (800, 200, 843, 700), (1253, 0)),
)


def photo_canvas(margin: int = 8) -> np.ndarray:
    """(960 + 2*margin) x (1280 + 2*margin) x 3 uint8: native pixels of scikit-image's photographs, unscaled."""
    try:
        import skimage
    except ImportError as err:
        raise SampleDataError(f"the compressed frames need scikit-image's photographs: {err}") from None
    from PIL import Image

    root = Path(skimage.__file__).parent / "data"
    h, w = PHOTO_SIZE[0] + 2 * margin, PHOTO_SIZE[1] + 2 * margin
    canvas = np.full((h, w, 3), 96, np.uint8)
    for name, (x0, y0, x1, y1), (dx, dy) in PHOTO_TILES:
        with Image.open(root / name) as im:
            tile = np.asarray(im.convert("RGB"))[y0:y1, x0:x1]
        th, tw = min(tile.shape[0], h - dy), min(tile.shape[1], w - dx)
        canvas[dy : dy + th, dx : dx + tw] = tile[:th, :tw]
    return canvas


def camera_noise(frame: np.ndarray, rng: np.random.Generator, shot: float = 0.25, read: float = 1.5) -> np.ndarray:
    """Sensor-like noise: Gaussian with variance shot*I + read^2 (DN), rounded and clipped to uint8."""
    img = frame.astype(np.float32)
    noisy = img + rng.standard_normal(img.shape, dtype=np.float32) * np.sqrt(shot * img + read * read)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def photo_frames(frames: int = 30, shift_px: int = 8, seed: int = 0) -> Iterator[np.ndarray]:
    """`frames` 960x1280x3 uint8 camera frames: the photo canvas panned along `frame_offsets`, seeded noise."""
    canvas = photo_canvas(shift_px)
    rng = np.random.default_rng(seed)
    h, w = PHOTO_SIZE
    for dx, dy in frame_offsets(frames, shift_px):
        yield camera_noise(canvas[shift_px + dy : shift_px + dy + h, shift_px + dx : shift_px + dx + w], rng)


def write_image_bag(
    path: str | Path,
    picture: str = "astronaut",
    frames: int = 30,
    rate_hz: float = 10.0,
    width: int = 640,
    height: int = 480,
    shift_px: int = 8,
    frame_id: str = "camera",
) -> Path:
    """Write the camera bag (rgb8 Images on IMAGE_TOPIC and, at the same stamps, 1280x960 JPEG CompressedImages
    on COMPRESSED_TOPIC; stamps from BASE_STAMP_S at rate_hz); returns its path."""
    import rosbag
    import rospy
    from std_msgs.msg import Header

    from intradp_ros.ros.sensor_conversion import rgb_to_compressed, rgb_to_image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with rosbag.Bag(str(tmp), "w") as bag:
        for i, frame in enumerate(camera_frames(load_picture(picture), frames, width, height, shift_px)):
            stamp = rospy.Time(BASE_STAMP_S) + rospy.Duration.from_sec(i / rate_hz)
            msg = rgb_to_image(frame, Header(seq=i, stamp=stamp, frame_id=frame_id))
            bag.write(IMAGE_TOPIC, msg, t=stamp)
        for i, photo in enumerate(photo_frames(frames, shift_px)):
            stamp = rospy.Time(BASE_STAMP_S) + rospy.Duration.from_sec(i / rate_hz)
            header = Header(seq=i, stamp=stamp, frame_id=frame_id)
            bag.write(COMPRESSED_TOPIC, rgb_to_compressed(photo, header, "jpeg", JPEG_QUALITY), t=stamp)
    tmp.replace(path)
    return path


# ---- procedural scene ------------------------------------------------------------------------------------------
def write_cloud_bag(
    path: str | Path,
    cfg: SceneConfig = DEFAULT_SCENE,
    rate_hz: float = 5.0,
    frame_id: str = "world",
    compression: str = "lz4",
) -> Path:
    """Write the point-cloud bag (PointCloud2 on CLOUD_TOPIC, stamps from BASE_STAMP_S); returns its path.

    Chunks are lz4-compressed by default (voxel centres compress about 2x; rosbag decompresses on read);
    bz2 is used instead where rosbag has no lz4.
    """
    import rosbag
    import rospy
    from std_msgs.msg import Header

    from intradp_ros.ros.sensor_conversion import xyz_to_pointcloud2

    if compression not in ("none", "lz4", "bz2"):
        raise SampleDataError(f"compression must be none, lz4 or bz2, got {compression!r}")
    if compression == "lz4":
        try:
            import roslz4  # noqa: F401  (rosbag's lz4 codec, a separate Debian package)
        except ImportError:
            compression = "bz2"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with rosbag.Bag(str(tmp), "w", compression=compression) as bag:
        for i, pts in enumerate(cloud_frames(cfg)):
            stamp = rospy.Time(BASE_STAMP_S) + rospy.Duration.from_sec(i / rate_hz)
            bag.write(CLOUD_TOPIC, xyz_to_pointcloud2(pts, Header(seq=i, stamp=stamp, frame_id=frame_id)), t=stamp)
    tmp.replace(path)
    return path


def ensure_sample_bags(
    cache_dir: str | Path | None = None,
    picture: str = "astronaut",
    image_frames: int = 30,
    cloud: SceneConfig = DEFAULT_SCENE,
    force: bool = False,
) -> dict[str, Path]:
    """Both bags in `cache_dir` (made if missing or `force`): {"camera": path, "cloud": path}."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    tag = Path(picture).stem if picture not in PICTURES else picture
    camera = root / f"camera_{tag}_{image_frames}f_v{GENERATOR_VERSION}.bag"
    settings = hashlib.sha1(repr(cloud).encode()).hexdigest()[:8]
    clouds = root / f"occupancy_seed{cloud.seed}_{cloud.frames}f_{settings}_v{GENERATOR_VERSION}.bag"
    if force or not camera.is_file():
        write_image_bag(camera, picture, image_frames)
    if force or not clouds.is_file():
        write_cloud_bag(clouds, cloud)
    return {"camera": camera, "cloud": clouds}
