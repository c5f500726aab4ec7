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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from intradp_ros.core import cache
from intradp_ros.models.voxels import AGRNAV_GRID, VoxelGridSpec

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
@dataclass(frozen=True)
class SceneConfig:
    """Seeded scene around a robot at the origin, and how the viewpoint moves (metres)."""

    seed: int = 0
    walls: int = 4
    boxes: int = 16
    poles: int = 12
    trees: int = 8
    clear_radius: float = 2.0  # no obstacle this close to the origin ...
    scene_radius: float = 10.0  # ... nor farther than this
    frames: int = 20
    path_end: tuple[float, float] = (5.0, 2.0)  # viewpoint goes from (0, 0) to here
    local_range: float = 5.0  # local map radius around the viewpoint
    inflate_voxels: int = 1  # obstacles grown by this many voxels in x and y


def _box(occ: np.ndarray, spec: VoxelGridSpec, lo: tuple[float, float, float], hi: tuple[float, float, float]) -> None:
    """Mark the voxels of an axis-aligned box [lo, hi) (metres), clipped to the grid."""
    o, v = np.asarray(spec.origin), spec.voxel_size
    a = np.clip(np.floor((np.asarray(lo) - o) / v).astype(int), 0, spec.size_xyz)
    b = np.clip(np.ceil((np.asarray(hi) - o) / v).astype(int), 0, spec.size_xyz)
    occ[a[0] : b[0], a[1] : b[1], a[2] : b[2]] = 1


def _place(rng: np.random.Generator, cfg: SceneConfig, spec: VoxelGridSpec, margin: float) -> tuple[float, float]:
    """A random (x, y) inside the grid (by `margin`), within scene_radius of the origin and outside the clear circle."""
    o, v, (nx, ny, _) = spec.origin, spec.voxel_size, spec.size_xyz
    r = cfg.scene_radius
    for _ in range(1000):
        x = rng.uniform(max(o[0] + margin, -r), min(o[0] + nx * v - margin, r))
        y = rng.uniform(max(o[1] + margin, -r), min(o[1] + ny * v - margin, r))
        if cfg.clear_radius + margin < math.hypot(x, y) <= r:
            return x, y
    raise SampleDataError("cannot place an obstacle outside the clear radius")


def make_scene(cfg: SceneConfig = SceneConfig(), spec: VoxelGridSpec = AGRNAV_GRID) -> np.ndarray:
    """uint8 0/1 occupancy grid (x, y, z) of the scene: ground, walls, boxes, poles and trees (seeded)."""
    rng = np.random.default_rng(cfg.seed)
    occ = np.zeros(spec.size_xyz, dtype=np.uint8)
    v = spec.voxel_size
    top = spec.origin[2] + spec.size_xyz[2] * v
    occ[:, :, 0] = 1  # ground: the first height level, z in [-0.1, 0)
    for _ in range(cfg.walls):
        x, y = _place(rng, cfg, spec, 1.0)
        length, height = rng.uniform(3.0, 8.0), rng.uniform(1.5, 2.8)
        if rng.random() < 0.5:
            _box(occ, spec, (x, y, 0.0), (x + length, y + 0.2, height))
        else:
            _box(occ, spec, (x, y, 0.0), (x + 0.2, y + length, height))
    for _ in range(cfg.boxes):
        x, y = _place(rng, cfg, spec, 1.0)
        sx, sy, sz = rng.uniform(0.4, 2.0), rng.uniform(0.4, 2.0), rng.uniform(0.3, 1.5)
        _box(occ, spec, (x, y, 0.0), (x + sx, y + sy, sz))
    for _ in range(cfg.poles):
        x, y = _place(rng, cfg, spec, 0.5)
        r, height = rng.uniform(0.05, 0.15), rng.uniform(2.0, top)
        _box(occ, spec, (x - r, y - r, 0.0), (x + r, y + r, height))
    for _ in range(cfg.trees):
        x, y = _place(rng, cfg, spec, 1.5)
        trunk, crown_z, crown_r = rng.uniform(0.1, 0.2), rng.uniform(1.8, 2.4), rng.uniform(0.6, 1.2)
        _box(occ, spec, (x - trunk, y - trunk, 0.0), (x + trunk, y + trunk, crown_z))
        _ball(occ, spec, (x, y, crown_z), crown_r)
    return occ


def _ball(occ: np.ndarray, spec: VoxelGridSpec, centre: tuple[float, float, float], radius: float) -> None:
    """Mark the voxels whose centres lie within `radius` of `centre` (only the bounding box is looked at)."""
    o, v = np.asarray(spec.origin), spec.voxel_size
    lo = np.clip(np.floor((np.asarray(centre) - radius - o) / v).astype(int), 0, spec.size_xyz)
    hi = np.clip(np.ceil((np.asarray(centre) + radius - o) / v).astype(int), 0, spec.size_xyz)
    axes = [o[k] + (np.arange(lo[k], hi[k]) + 0.5) * v - centre[k] for k in range(3)]
    d2 = axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2
    occ[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] |= (d2 <= radius * radius).astype(np.uint8)


def _inflate_xy(occ: np.ndarray, voxels: int) -> np.ndarray:
    """Obstacles (not the ground level) grown by `voxels` in x and y."""
    if voxels <= 0:
        return occ
    from scipy.ndimage import binary_dilation

    out = occ.copy()
    structure = np.ones((2 * voxels + 1, 2 * voxels + 1, 1), dtype=bool)
    out[:, :, 1:] = binary_dilation(occ[:, :, 1:].astype(bool), structure=structure)
    return out


def viewpoints(cfg: SceneConfig = SceneConfig()) -> np.ndarray:
    """[frames, 2] (x, y) of the moving viewpoint: from the origin to path_end along a gentle curve."""
    s = np.linspace(0.0, 1.0, cfg.frames)
    ex, ey = cfg.path_end
    return np.stack([ex * s, ey * s * s], axis=1)


def _surface(occ: np.ndarray) -> np.ndarray:
    """Occupied voxels with a free 6-neighbour: what a depth sensor can see of solid objects."""
    from scipy.ndimage import binary_erosion

    solid = occ.astype(bool)
    return (solid & ~binary_erosion(solid, border_value=1)).astype(np.uint8)


def cloud_frames(cfg: SceneConfig = SceneConfig(), spec: VoxelGridSpec = AGRNAV_GRID) -> Iterator[np.ndarray]:
    """For each viewpoint: [N, 3] float32 centres of the inflated object surfaces within local_range of it."""
    occ = _inflate_xy(_surface(make_scene(cfg, spec)), cfg.inflate_voxels)
    idx = np.argwhere(occ)  # [M, 3] (x, y, z)
    centres = (np.asarray(spec.origin) + (idx + 0.5) * spec.voxel_size).astype(np.float32)
    for vx, vy in viewpoints(cfg):
        near = np.hypot(centres[:, 0] - vx, centres[:, 1] - vy) <= cfg.local_range
        yield centres[near]


def write_cloud_bag(
    path: str | Path,
    cfg: SceneConfig = SceneConfig(),
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
    cloud: SceneConfig = SceneConfig(),
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
