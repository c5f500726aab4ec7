"""A seeded procedural scene for SCONet/AGRNav inputs: ground, walls, boxes, poles and trees around a robot at the
origin, inside a voxel grid (AGRNav's by default: 0.1 m voxels from (-10, -10, -0.1), 256 x 256 x 32). Its object
surfaces (what a depth sensor sees), inflated by one voxel in x and y like ego-planner's inflated map, within a
local-map range of a viewpoint moving away from the origin, are the sample point clouds (eval/sample_data writes
them to a bag), and the first one voxelized is what an AGRNav robot profiles its codecs on before its first scan
(`scan_occupancy`): a random 0/1 grid never compresses, a scan's occupancy a hundredfold.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from intradp_ros.models.voxels import AGRNAV_GRID, VoxelGridSpec, voxelize


class SceneError(RuntimeError):
    """A scene that cannot be made with these settings."""


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
    raise SceneError("cannot place an obstacle outside the clear radius")


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


def scan_occupancy(spec: VoxelGridSpec = AGRNAV_GRID, cfg: SceneConfig = SceneConfig()) -> np.ndarray:
    """uint8 0/1 occupancy (x, y, z) of the scene's first sample cloud voxelized in `spec`: a realistic scan."""
    return voxelize(next(iter(cloud_frames(cfg, spec))), spec)


DEFAULT_SCENE = SceneConfig()  # the sample bag's scene
