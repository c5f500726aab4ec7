"""Voxelisation, bit-packing and SCONet's completed-voxel extraction with hand-checked expectations."""

import numpy as np
import pytest
import torch

from intradp_ros.models.voxels import (
    AGRNAV_GRID,
    VoxelError,
    VoxelGridSpec,
    completed_voxels,
    completed_voxels_from_rows,
    grid_to_model_input,
    model_input_to_grid,
    pack_grid,
    predicted_classes,
    unpack_grid,
    voxel_indices,
    voxelize,
)


def test_points_land_in_the_expected_voxels_and_out_of_range_ones_are_dropped():
    pts = np.array(
        [
            [-9.95, -9.95, -0.05],  # half a voxel from the origin corner (-10, -10, -0.1): voxel (0, 0, 0)
            [0.05, 0.05, 0.05],  # floor(10.05 / 0.1) = 100, floor(0.15 / 0.1) = 1: voxel (100, 100, 1)
            [15.55, 15.55, 3.05],  # the last voxel (255, 255, 31)
            [15.65, 0.05, 0.05],  # x just outside (index 256)
            [0.05, -10.05, 0.05],  # y just below the grid
            [0.05, 0.05, -0.15],  # below the ground plane of the grid
            [np.nan, 0.0, 0.0],  # invalid points
            [0.0, np.inf, 0.0],
        ],
        dtype=np.float32,
    )
    idx = voxel_indices(pts)
    assert idx.tolist() == [[0, 0, 0], [100, 100, 1], [255, 255, 31]]
    grid = voxelize(pts)
    assert grid.shape == (256, 256, 32) and grid.dtype == np.uint8 and int(grid.sum()) == 3
    assert grid[0, 0, 0] == grid[100, 100, 1] == grid[255, 255, 31] == 1
    with pytest.raises(VoxelError, match=r"\[N, 3\]"):
        voxel_indices(np.zeros((4, 2)))


def test_bit_packing_round_trips_msb_first():
    rng = np.random.default_rng(0)
    grid = (rng.random((256, 256, 32)) < 0.05).astype(np.uint8)
    packed = pack_grid(grid)
    assert packed.size == 262_144 == AGRNAV_GRID.packed_bytes
    flat = np.zeros(AGRNAV_GRID.num_voxels, np.uint8)
    flat[0] = 1  # voxel (0, 0, 0) is the most significant bit of byte 0
    flat[9] = 1  # voxel (0, 0, 9) is bit 6 of byte 1
    p = pack_grid(flat.reshape(256, 256, 32))
    assert p[0] == 0x80 and p[1] == 0x40
    assert np.array_equal(unpack_grid(packed), grid)
    assert np.array_equal(unpack_grid(packed.tobytes()), grid)
    with pytest.raises(VoxelError, match="262144 bytes"):
        unpack_grid(packed[:-1])


def test_model_input_is_a_transposed_view_of_the_grid():
    grid = np.zeros((256, 256, 32), np.uint8)
    grid[3, 200, 7] = 1
    x = grid_to_model_input(grid)
    assert x.shape == (1, 1, 256, 32, 256) and x.dtype == torch.uint8
    assert x[0, 0, 3, 7, 200] == 1 and int(x.sum()) == 1
    assert np.array_equal(model_input_to_grid(x).numpy(), grid)


def test_completed_voxels_are_predicted_occupied_and_empty_in_the_input():
    spec = VoxelGridSpec(0.5, (0.0, 0.0, 0.0), (8, 4, 2))
    occ = np.zeros((8, 4, 2), np.uint8)
    occ[1, 2, 1] = 1
    logits = torch.zeros(1, 20, 8, 2, 4)  # model layout (x, z, y)
    logits[0, 0] = 1.0  # everything empty...
    logits[0, 5, 1, 1, 2] = 9.0  # ...except (x1, y2, z1): already occupied in the input
    logits[0, 7, 6, 0, 3] = 9.0  # (x6, y3, z0): new -> flat 6*4*2 + 3*2 + 0 = 54
    logits[0, 19, 2, 1, 0] = 9.0  # (x2, y0, z1): new -> flat 2*8 + 0 + 1 = 17
    classes = predicted_classes(logits)
    assert classes.dtype == torch.uint8 and classes.shape == (1, 8, 2, 4)
    occ_model = torch.as_tensor(occ).permute(0, 2, 1)[None, None]
    res = completed_voxels(classes, occ_model, spec)
    assert res.indices.tolist() == [17, 54] and res.classes.tolist() == [19, 7]
    assert res.coordinates().tolist() == [[2, 0, 1], [6, 3, 0]]
    assert res.planner_list().tolist() == [2.0, 0.0, 1.0, 6.0, 3.0, 0.0]
    assert res.centers().tolist() == [[1.25, 0.25, 0.75], [3.25, 1.75, 0.25]]
    # Each side can extract its own x-rows; the parts concatenated in row order give the same result.
    a = completed_voxels_from_rows(classes[0, :5], occ_model[0, 0, :5], 0, spec)
    b = completed_voxels_from_rows(classes[0, 5:], occ_model[0, 0, 5:], 5, spec)
    assert np.concatenate((a.indices, b.indices)).tolist() == [17, 54]
    assert np.concatenate((a.classes, b.classes)).tolist() == [19, 7]
