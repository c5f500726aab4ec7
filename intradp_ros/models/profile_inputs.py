"""What a side profiles its codecs on: a realistic input of the model's kind, never the model's random example
(random pixels or a random 0/1 grid never compress, so every codec was priced at ratio 1.0 and never used): the
bundled photograph letterboxed like a camera frame for image models, a scan's occupancy of the seeded sample scene
for SCONet grids. The robot's clients and the server use the same samples, so both sides' codec ratios describe the
same kind of frame.
"""

from __future__ import annotations

import torch

from intradp_ros.models.camera_input import sample_profile_input
from intradp_ros.models.sample_scene import SceneError, scan_occupancy
from intradp_ros.models.voxels import VoxelGridSpec, grid_to_model_input, scaled_grid


def scan_profile_input(example: torch.Tensor, spec: VoxelGridSpec | None = None) -> tuple[torch.Tensor, str]:
    """(a scan's occupancy in `spec`, "scene_sample") for a SCONet input [1, 1, X, Z, Y]; `spec` None: AGRNav's grid
    scaled to the example's size. `example` and "" where the scene does not fit."""
    if example.dim() != 5 or example.dtype != torch.uint8:
        return example, ""
    try:
        x = grid_to_model_input(scan_occupancy(spec or scaled_grid(example.shape[-3:])))
    except SceneError:
        return example, ""
    if x.shape != example.shape or x.dtype != example.dtype:
        return example, ""
    return x, "scene_sample"


def profile_input(example: torch.Tensor) -> tuple[torch.Tensor, str]:
    """(input to profile a model's codecs on, its name) for a model whose random input is `example`: the
    photograph for uint8 image inputs [1, 3, H, W], a scan for uint8 voxel grids [1, 1, X, Z, Y], else `example`
    and ""."""
    if example.dtype == torch.uint8 and example.dim() == 4 and example.shape[1] == 3:
        return sample_profile_input(example)
    if example.dtype == torch.uint8 and example.dim() == 5 and example.shape[1] == 1:
        return scan_profile_input(example)
    return example, ""
