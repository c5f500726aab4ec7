"""session: replicas are named canonically, seeded replicas match, other weights/graphs are refused."""

from __future__ import annotations

import pytest
import torch

from intradp_ros.core.session import ModelConfig, ReplicaError, weights_fingerprint


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


def test_fingerprint_sees_one_changed_weight() -> None:
    m = torch.nn.Linear(3, 2)
    fp = weights_fingerprint(m)
    with torch.no_grad():
        m.weight[0, 0] += 1e-6
    assert weights_fingerprint(m) != fp
