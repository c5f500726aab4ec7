"""session: replicas are named canonically, seeded replicas match, other weights/graphs are refused."""

from __future__ import annotations

import pytest
import torch

from intradp_ros.core.session import ModelConfig, ReplicaError, check_peer, load_replica, weights_fingerprint

TINY = {"name": "torchvision:resnet18", "input_size": [64, 64]}


def test_model_id_round_trip() -> None:
    cfg = ModelConfig.from_dict({"name": "kapao_s6", "input_size": (256, 320), "seed": 3})
    assert cfg.model_id == 'kapao_s6{"input_size":[256,320]}'
    back = ModelConfig.from_model_id(cfg.model_id, seed=3)
    assert back == cfg
    assert ModelConfig("sconet").model_id == "sconet"


def test_bad_configs_are_refused() -> None:
    with pytest.raises(ReplicaError):
        ModelConfig.from_dict({"input_size": [1, 2]})
    with pytest.raises(ReplicaError):
        ModelConfig.from_dict({"name": "sconet", "colour": "red"})
    with pytest.raises(ReplicaError):
        ModelConfig.from_model_id("sconet{not json")


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


def test_fingerprint_sees_one_changed_weight() -> None:
    m = torch.nn.Linear(3, 2)
    fp = weights_fingerprint(m)
    with torch.no_grad():
        m.weight[0, 0] += 1e-6
    assert weights_fingerprint(m) != fp


def test_loading_does_not_disturb_the_global_rng() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load_replica(ModelConfig.from_dict(TINY))
    assert torch.equal(torch.rand(3), expected)
