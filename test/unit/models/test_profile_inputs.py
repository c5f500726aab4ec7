"""models/profile_inputs: both sides profile their codecs on a realistic input of the model's kind."""

from __future__ import annotations

import torch

from intradp_ros.models.profile_inputs import profile_input, scan_profile_input
from intradp_ros.models.voxels import VoxelGridSpec, scaled_grid


def test_image_models_get_the_photograph_and_voxel_models_a_scan() -> None:
    image = torch.randint(0, 256, (1, 3, 96, 128), dtype=torch.uint8)
    x, name = profile_input(image)
    assert name == "camera_sample" and x.shape == image.shape and x.dtype == torch.uint8
    grid = torch.randint(0, 2, (1, 1, 64, 8, 64), dtype=torch.uint8)
    x, name = profile_input(grid)
    assert name == "scene_sample" and x.shape == grid.shape and x.dtype == torch.uint8
    assert 0.0 < float(x.float().mean()) < 0.2, "a scan's sparse occupancy, not the random half-full grid"


def test_other_inputs_and_grids_the_scene_cannot_fill_keep_the_example() -> None:
    floats = torch.zeros((1, 3, 32, 32))
    x, name = profile_input(floats)
    assert x is floats and name == ""
    grid = torch.zeros((1, 1, 64, 8, 64), dtype=torch.uint8)
    wrong = VoxelGridSpec(0.4, (-10.0, -10.0, -0.1), (32, 32, 8))  # another size than the example's
    x, name = scan_profile_input(grid, wrong)
    assert x is grid and name == ""


def test_scaled_grid_covers_agrnavs_area_at_any_size() -> None:
    full, small = scaled_grid((256, 32, 256)), scaled_grid((64, 8, 64))
    assert full.voxel_size == 0.1 and full.size_xyz == (256, 256, 32)
    assert small.voxel_size == 0.4 and small.size_xyz == (64, 64, 8)
    assert scaled_grid((64, 8, 64), 0.2, (0, 0, 0)).voxel_size == 0.2
