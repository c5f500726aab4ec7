"""models/sample_scene: the seeded scene an AGRNav robot profiles its codecs on (and the sample bag's clouds)."""

from __future__ import annotations

import numpy as np
import pytest

from intradp_ros.core.codecs.zstd_frame import compress
from intradp_ros.models.sample_scene import SceneConfig, SceneError, make_scene, scan_occupancy
from intradp_ros.models.voxels import AGRNAV_GRID, VoxelGridSpec


def test_a_scans_occupancy_is_sparse_deterministic_and_compresses_like_a_scan() -> None:
    """A random 0/1 grid never compresses; the profile needs a scan's: about 1 % occupied, bit-packed + zstd far
    below a tenth of the bit-packed bytes (the wire's bitpack_zstd)."""
    occ = scan_occupancy()
    assert occ.shape == AGRNAV_GRID.size_xyz and occ.dtype == np.uint8 and set(np.unique(occ)) <= {0, 1}
    assert 0.001 < occ.mean() < 0.05
    assert np.array_equal(occ, scan_occupancy()), "seeded: the same scan every time"
    packed = np.packbits(occ)
    assert len(compress(packed)) < 0.1 * packed.nbytes
    noise = np.packbits(np.random.default_rng(0).integers(0, 2, occ.shape, dtype=np.uint8))
    assert len(compress(noise)) > 0.9 * noise.nbytes, "what the random example gave the profile"


def test_a_reduced_grid_gets_its_own_scan_and_an_impossible_scene_says_why() -> None:
    small = VoxelGridSpec(0.4, AGRNAV_GRID.origin, (64, 64, 8))
    assert scan_occupancy(small).shape == (64, 64, 8)
    with pytest.raises(SceneError, match="clear radius"):
        make_scene(SceneConfig(clear_radius=50.0))
