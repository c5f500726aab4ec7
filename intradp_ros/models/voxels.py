"""AGRNav voxel conventions: point cloud -> occupancy grid -> bit-packed bytes and back, and SCONet results.

Grid: voxel 0.1 m, origin (-10, -10, -0.1), 256 x 256 x 32 voxels in (x, y, z); the flat grid is in (x, y, z)
order (z fastest, the SemanticKITTI layout) and bit-packed most significant bit first: 262,144 bytes per frame.
SCONet's input is the same grid as [B, 1, X, Z, Y] (`grid_to_model_input` is a view, no copy of the voxels).
Everything here is vectorised numpy/torch: no Python loop over points or voxels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from intradp_ros.core.sparse import SparseRows


@dataclass(frozen=True)
class VoxelGridSpec:
    """Geometry of the occupancy grid (AGRNav's defaults)."""

    voxel_size: float = 0.1
    origin: tuple[float, float, float] = (-10.0, -10.0, -0.1)
    size_xyz: tuple[int, int, int] = (256, 256, 32)

    @property
    def num_voxels(self) -> int:
        x, y, z = self.size_xyz
        return x * y * z

    @property
    def packed_bytes(self) -> int:
        return (self.num_voxels + 7) // 8

    @property
    def model_grid_xzy(self) -> tuple[int, int, int]:
        x, y, z = self.size_xyz
        return (x, z, y)


AGRNAV_GRID = VoxelGridSpec()


def scaled_grid(
    grid_xzy: Sequence[int], voxel_size: float = 0.0, origin: Sequence[float] = AGRNAV_GRID.origin
) -> VoxelGridSpec:
    """The voxel grid matching a SCONet grid (X, Z, Y): `voxel_size` 0 scales AGRNav's 0.1 m so the grid covers
    the same 25.6 m (a reduced test grid gets bigger voxels)."""
    x, z, y = (int(v) for v in grid_xzy)
    size = voxel_size if voxel_size > 0 else AGRNAV_GRID.voxel_size * AGRNAV_GRID.size_xyz[0] / x
    return VoxelGridSpec(float(size), (float(origin[0]), float(origin[1]), float(origin[2])), (x, y, z))


class VoxelError(ValueError):
    """Input that cannot be voxelised or unpacked (wrong shape, wrong byte count)."""


def voxel_indices(points: np.ndarray, spec: VoxelGridSpec = AGRNAV_GRID) -> np.ndarray:
    """Integer (x, y, z) voxel indices [M, 3] of the finite, in-bounds points of an [N, 3] cloud (floor division)."""
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise VoxelError(f"points must have shape [N, 3], got {pts.shape}")
    pts = pts.astype(np.float64, copy=False)
    scaled = np.floor((pts - np.asarray(spec.origin, dtype=np.float64)) / spec.voxel_size)
    finite = np.isfinite(scaled).all(axis=1)
    scaled = scaled[finite]
    inside = ((scaled >= 0) & (scaled < np.asarray(spec.size_xyz))).all(axis=1)
    return scaled[inside].astype(np.int64)


def voxelize(points: np.ndarray, spec: VoxelGridSpec = AGRNAV_GRID) -> np.ndarray:
    """Occupancy grid uint8 0/1 of shape size_xyz (x, y, z); points outside the grid or non-finite are dropped."""
    idx = voxel_indices(points, spec)
    grid = np.zeros(spec.size_xyz, dtype=np.uint8)
    grid[idx[:, 0], idx[:, 1], idx[:, 2]] = 1
    return grid


def pack_grid(grid_xyz: np.ndarray) -> np.ndarray:
    """Bit-pack a 0/1 (x, y, z) grid, most significant bit first (262,144 bytes for AGRNav's grid)."""
    return np.packbits(np.asarray(grid_xyz, dtype=np.uint8).reshape(-1) != 0)


def unpack_grid(packed: np.ndarray | bytes, spec: VoxelGridSpec = AGRNAV_GRID) -> np.ndarray:
    """Inverse of `pack_grid`: uint8 0/1 grid of shape size_xyz; a wrong byte count is refused."""
    buf = (
        np.frombuffer(packed, dtype=np.uint8)
        if isinstance(packed, (bytes, bytearray, memoryview))
        else np.asarray(packed, dtype=np.uint8).reshape(-1)
    )
    if buf.size != spec.packed_bytes:
        raise VoxelError(f"packed grid must be {spec.packed_bytes} bytes, got {buf.size}")
    return np.unpackbits(buf, count=spec.num_voxels).reshape(spec.size_xyz)


def grid_to_model_input(grid_xyz: np.ndarray | torch.Tensor) -> torch.Tensor:
    """SCONet input [1, 1, X, Z, Y] uint8 from an (x, y, z) grid (a transposed view, the voxels are not copied)."""
    t = torch.as_tensor(grid_xyz)
    if t.dim() != 3:
        raise VoxelError(f"grid must be 3-D (x, y, z), got shape {tuple(t.shape)}")
    return t.to(torch.uint8).permute(0, 2, 1).unsqueeze(0).unsqueeze(0)


def model_input_to_grid(occupancy: torch.Tensor) -> torch.Tensor:
    """(x, y, z) grid view of one SCONet input [1, 1, X, Z, Y] (or [X, Z, Y])."""
    occ = occupancy.reshape(occupancy.shape[-3:])
    return occ.permute(0, 2, 1)


@dataclass(frozen=True)
class CompletedVoxels:
    """Voxels predicted occupied that were empty in the input: flat (x, y, z) indices and their classes."""

    indices: np.ndarray  # uint32 [K], x*Y*Z + y*Z + z
    classes: np.ndarray  # uint8 [K], 1..19
    spec: VoxelGridSpec = AGRNAV_GRID

    def coordinates(self) -> np.ndarray:
        """Integer (x, y, z) voxel coordinates [K, 3]."""
        return np.stack(np.unravel_index(self.indices.astype(np.int64), self.spec.size_xyz), axis=1)

    def centers(self) -> np.ndarray:
        """Voxel centres in metres [K, 3] float32."""
        c = (self.coordinates() + 0.5) * self.spec.voxel_size + np.asarray(self.spec.origin)
        return c.astype(np.float32)

    def planner_list(self) -> np.ndarray:
        """What AGRNav's planner reads from /non_intersection_coordinates: x0, y0, z0, x1, ... as float64."""
        return self.coordinates().astype(np.float64).reshape(-1)


def predicted_classes(logits: torch.Tensor) -> torch.Tensor:
    """Argmax over the class axis of SCONet logits [B, 20, X, Z, Y] -> uint8 [B, X, Z, Y] (0 = empty)."""
    return logits.argmax(1).to(torch.uint8)


def completed_voxels(
    classes_xzy: torch.Tensor | np.ndarray, occupancy_xzy: torch.Tensor | np.ndarray, spec: VoxelGridSpec = AGRNAV_GRID
) -> CompletedVoxels:
    """Voxels whose predicted class is non-empty but whose input occupancy was 0, for one frame.

    Both inputs are in the model layout (X, Z, Y) (leading size-1 axes allowed); the indices are flat (x, y, z).
    """
    cls = torch.as_tensor(classes_xzy)
    occ = torch.as_tensor(occupancy_xzy)
    cls = cls.reshape(cls.shape[-3:]).permute(0, 2, 1)  # (x, y, z)
    occ = occ.reshape(occ.shape[-3:]).permute(0, 2, 1)
    if tuple(cls.shape) != spec.size_xyz or tuple(occ.shape) != spec.size_xyz:
        raise VoxelError(f"classes {tuple(cls.shape)} / occupancy {tuple(occ.shape)} do not match grid {spec.size_xyz}")
    new = (cls > 0) & (occ == 0)
    flat_idx = torch.nonzero(new.reshape(-1)).reshape(-1)  # ascending flat (x, y, z) order
    classes = cls.reshape(-1)[flat_idx]
    return CompletedVoxels(flat_idx.cpu().numpy().astype(np.uint32), classes.cpu().numpy().astype(np.uint8), spec)


def completed_voxels_from_sparse(sr: SparseRows, spec: VoxelGridSpec = AGRNAV_GRID, item: int = 0) -> CompletedVoxels:
    """The completion head's output (positions in the [B, X, Y, Z] grid, classes) as CompletedVoxels of one frame."""
    b, x, y, z = sr.mask_shape
    if (x, y, z) != spec.size_xyz:
        raise VoxelError(f"completion grid {(x, y, z)} does not match grid {spec.size_xyz}")
    per_item = x * y * z
    keep = (sr.index // per_item) == item
    return CompletedVoxels(
        (sr.index[keep] - item * per_item).cpu().numpy().astype(np.uint32),
        sr.values[keep].cpu().numpy().astype(np.uint8),
        spec,
    )


def completed_voxels_from_rows(
    classes_rows: torch.Tensor, occupancy_rows: torch.Tensor, row_start: int, spec: VoxelGridSpec = AGRNAV_GRID
) -> CompletedVoxels:
    """Same as `completed_voxels` for x-rows [row_start, row_start + h) only ([h, Z, Y] each): a side can send just
    its survivors; concatenating the parts of all rows in row order gives exactly the full result."""
    x, y, z = spec.size_xyz
    cls = classes_rows.reshape(classes_rows.shape[-3:]).permute(0, 2, 1)
    occ = occupancy_rows.reshape(occupancy_rows.shape[-3:]).permute(0, 2, 1)
    new = (cls > 0) & (occ == 0)
    local = torch.nonzero(new.reshape(-1)).reshape(-1)
    flat = local + row_start * y * z
    return CompletedVoxels(
        flat.cpu().numpy().astype(np.uint32), cls.reshape(-1)[local].cpu().numpy().astype(np.uint8), spec
    )
