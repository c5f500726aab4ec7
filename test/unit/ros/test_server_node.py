"""The server builds the other output heads of a model it serves (same weights), and nothing else."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

pytest.importorskip("rospy")

from intradp_ros.core.session import ModelConfig
from intradp_ros.core.sparse import SparseRows
from intradp_ros.ros.server_node import IntraDPServer, ServerSettings, load_settings, model_configs


@pytest.fixture(scope="module")
def server() -> IntraDPServer:
    s = IntraDPServer(ServerSettings(robots=["robot1"], device="cpu"))
    s.load_models([ModelConfig.from_dict({"name": "sconet", "grid_xzy": [32, 32, 32], "seed": 3})])
    return s


def test_a_head_of_a_served_model_is_built_on_request(server: IntraDPServer) -> None:
    base = server.replicas['sconet{"grid_xzy":[32,32,32]}']
    rep = server._replica_for('sconet{"grid_xzy":[32,32,32],"head":"completion"}')
    assert rep is not None and rep.config.seed == base.config.seed == 3
    assert isinstance(rep.forward_local(rep.example), SparseRows)
    assert server._replica_for('sconet{"grid_xzy":[32,32,32],"head":"completion"}') is rep  # built once


def test_other_models_are_not_built(server: IntraDPServer) -> None:
    assert "not served" in server._replica_for('sconet{"grid_xzy":[64,32,64],"head":"completion"}')  # other size
    assert "not served" in server._replica_for('kapao_s6{"head":"candidates"}')  # not served
    assert "not served" in server._replica_for("sconet{not json")


def test_health_reports_device_replicas_and_random_weights(server: IntraDPServer) -> None:
    h = server.health()
    assert h.values["device"] == "cpu" and h.values["robots"] == "robot1" and h.values["sessions"] == "none"
    assert int(h.values["replicas"]) >= 1 and float(h.values["max_rss_mb"]) > 0
    assert h.level == 1 and "random weights" in h.message


def test_cuda_without_a_gpu_refuses_to_start() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="device cuda requested but .*use device auto or cpu"):
        IntraDPServer(ServerSettings(robots=["robot1"], device="cuda"))


def _params(values: dict) -> Any:
    return lambda name: (name in values, values.get(name))


def test_settings_defaults_parameters_and_command_line() -> None:
    s = load_settings(None, _params({}))
    assert s == ServerSettings() and s.robots == ["robot1"] and s.probes is True and s.max_probe_bytes == 4 << 20
    given = {"robots": "r1,r2", "probes": "off", "maxiter": "5", "model": "sconet", "grid_xzy": [32, 32, 32]}
    args = argparse.Namespace(maxiter=7, device="cpu")
    s = load_settings(args, _params(given))
    assert s.robots == ["r1", "r2"] and s.probes is False and s.maxiter == 7 and s.device == "cpu"
    assert [c.name for c in model_configs(s)] == ["sconet"]


@pytest.mark.parametrize(("name", "value"), [("probes", "maybe"), ("maxiter", "many"), ("request_timeout", "soon")])
def test_a_bad_setting_is_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"setting {name}="):
        load_settings(None, _params({name: value}))
