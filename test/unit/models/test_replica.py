"""replica loading: seeded replicas match, other weights/graphs are refused, the global RNG is left alone."""

from __future__ import annotations

import torch

from intradp_ros.core.session import ModelConfig, check_peer
from intradp_ros.models.replica import load_replica

TINY = {"name": "torchvision:resnet18", "input_size": [64, 64]}


def test_same_seed_same_weights_other_seed_refused() -> None:
    a = load_replica(ModelConfig.from_dict(TINY))
    b = load_replica(ModelConfig.from_dict(TINY))
    c = load_replica(ModelConfig.from_dict(dict(TINY, seed=1)))
    assert a.weights_fingerprint == b.weights_fingerprint
    assert a.graph_fingerprint == b.graph_fingerprint
    assert check_peer(a, b.model_id, b.weights_fingerprint, b.graph_fingerprint) is None
    assert "weights fingerprint" in check_peer(a, c.model_id, c.weights_fingerprint, c.graph_fingerprint)
    assert "not served" in check_peer(a, "sconet", a.weights_fingerprint, a.graph_fingerprint)
    assert "graph fingerprint" in check_peer(a, a.model_id, a.weights_fingerprint, "0" * 16)


def test_loading_does_not_disturb_the_global_rng() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load_replica(ModelConfig.from_dict(TINY))
    assert torch.equal(torch.rand(3), expected)
