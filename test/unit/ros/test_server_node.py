"""The server builds the other output heads of a model it serves (same weights), and nothing else."""

from __future__ import annotations

import pytest

pytest.importorskip("rospy")

from intradp_ros.core.session import ModelConfig
from intradp_ros.core.sparse import SparseRows
from intradp_ros.ros.server_node import SPEC, IntraDPServer


@pytest.fixture(scope="module")
def server() -> IntraDPServer:
    settings = {name: default for name, (_kind, default, _help) in SPEC.items()}
    settings.update(robots=["robot1"], device="cpu")
    s = IntraDPServer(settings)
    s.load_models([ModelConfig.from_dict({"name": "sconet", "grid_xzy": [32, 32, 32], "seed": 3})])
    return s


def test_a_head_of_a_served_model_is_built_on_request(server: IntraDPServer) -> None:
    base = server.replicas['sconet{"grid_xzy":[32,32,32]}']
    rep = server._replica_for('sconet{"grid_xzy":[32,32,32],"head":"completion"}')
    assert rep is not None and rep.config.seed == base.config.seed == 3
    assert isinstance(rep.forward_local(rep.example), SparseRows)
    assert server._replica_for('sconet{"grid_xzy":[32,32,32],"head":"completion"}') is rep  # built once


def test_other_models_are_not_built(server: IntraDPServer) -> None:
    assert server._replica_for('sconet{"grid_xzy":[64,32,64],"head":"completion"}') is None  # other size
    assert server._replica_for('kapao_s6{"head":"candidates"}') is None  # not served
    assert server._replica_for("sconet{not json") is None


def test_health_reports_device_replicas_and_random_weights(server: IntraDPServer) -> None:
    h = server.health()
    assert h.values["device"] == "cpu" and h.values["robots"] == "robot1" and h.values["sessions"] == "none"
    assert int(h.values["replicas"]) >= 1 and float(h.values["max_rss_mb"]) > 0
    assert h.level == 1 and "random weights" in h.message


def test_cuda_without_a_gpu_refuses_to_start() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    settings = {name: default for name, (_kind, default, _help) in SPEC.items()}
    settings.update(robots=["robot1"], device="cuda")
    with pytest.raises(ValueError, match="device cuda requested but .*use device auto or cpu"):
        IntraDPServer(settings)
