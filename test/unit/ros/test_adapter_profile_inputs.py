"""What each client adapter profiles its codecs on: a realistic frame of its sensor, never the random example."""

from __future__ import annotations

import pytest


def test_the_torchvision_client_profiles_on_the_photograph() -> None:
    pytest.importorskip("rospy")
    import torch

    from intradp_ros.ros.torchvision_client import TorchvisionAdapter

    example = torch.zeros((1, 3, 96, 128), dtype=torch.uint8)
    x, name = TorchvisionAdapter().profile_input(example)
    assert name == "camera_sample" and x.shape == example.shape and float(x.float().std()) > 10


def test_the_agrnav_client_profiles_on_a_scans_occupancy() -> None:
    pytest.importorskip("rospy")
    import torch

    from intradp_ros.ros.agrnav_client import AgrnavAdapter

    adapter = AgrnavAdapter()
    adapter.settings = {"voxel_size": 0.0, "origin": [-10.0, -10.0, -0.1]}
    example = torch.randint(0, 2, (1, 1, 64, 8, 64), dtype=torch.uint8)
    x, name = adapter.profile_input(example)
    assert name == "scene_sample" and x.shape == example.shape and x.dtype == torch.uint8
    assert 0.0 < float(x.float().mean()) < 0.2, "a scan's sparse occupancy, not the random example"
