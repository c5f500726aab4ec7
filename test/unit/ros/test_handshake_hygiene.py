"""The server checks a handshake before it builds anything: oversized or junk fields, heads and options outside the
configured ones and wrong fingerprints of a variant built before are refused without building a model copy; a
robot may cause one variant build per interval; variants are evicted least recently used beyond their budget;
refusals never echo unbounded input."""

from __future__ import annotations

import pytest

pytest.importorskip("rospy")

from intradp_ros.core.session import ModelConfig
from intradp_ros.ros import server_node
from intradp_ros.ros.server_node import IntraDPServer, ServerSettings
from intradp_ros.srv import HandshakeRequest

BASE = {"name": "sconet", "grid_xzy": [32, 32, 32], "seed": 3}
COMPLETION = 'sconet{"grid_xzy":[32,32,32],"head":"completion"}'
LOGITS = 'sconet{"grid_xzy":[32,32,32],"head":"logits"}'


def make_server(builds: list[str], **kw) -> IntraDPServer:
    """A server of BASE; `builds` then counts only what handshakes make it build."""
    s = IntraDPServer(ServerSettings(robots=["robot1", "robot2"], device="cpu", **kw))
    s.load_models([ModelConfig.from_dict(BASE)])
    builds.clear()
    return s


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Model ids the server built (load_replica calls after start)."""
    made: list[str] = []
    real = server_node.load_replica

    def counting(cfg, device="cpu"):
        made.append(cfg.model_id)
        return real(cfg, device)

    monkeypatch.setattr(server_node, "load_replica", counting)
    return made


def request(model_id: str, robot: str = "robot1", wfp: str = "ab" * 16, gfp: str = "cd" * 8) -> HandshakeRequest:
    return HandshakeRequest(robot=robot, model_id=model_id, weights_fingerprint=wfp, graph_fingerprint=gfp)


def test_a_10mb_model_id_is_refused_by_its_size_and_never_echoed(builds: list[str]) -> None:
    s = make_server(builds)
    resp = s.handle("robot1", request("sconet{" + "x" * (10 << 20)))
    assert not resp.accepted and "model_id is 10485767 long" in resp.error and len(resp.error) < 500
    assert builds == []


@pytest.mark.parametrize(
    ("model_id", "why"),
    [
        ('sconet{"grid_xzy":[32,32,32],"head":"evil"}', "not one of the allowed heads"),
        ('kapao_s6{"head":"candidates","candidate_conf":7}', "outside the allowed range"),
        ('sconet{"grid_xzy":[32,32,-1]}', "must be 1 to 4 integers"),
        ('sconet{"junk":1}', "JSON options of known keys"),
        ("../etc", "not a registry name"),
    ],
)
def test_junk_names_and_options_are_refused_before_building(builds: list[str], model_id: str, why: str) -> None:
    s = make_server(builds)
    resp = s.handle("robot1", request(model_id))
    assert not resp.accepted and why in resp.error
    assert builds == []


def test_junk_fields_are_refused(builds: list[str]) -> None:
    s = make_server(builds)
    assert "not lowercase hex" in s.handle("robot1", request(COMPLETION, wfp="<script>")).error
    assert "not a ROS name segment" in s.handle("robot1", request(COMPLETION, robot="a b")).error
    assert "on 'robot1'" in s.handle("robot1", request(COMPLETION, robot="robot2")).error
    big = request(COMPLETION)
    big.client_profile_json = "{" * (9 << 20)
    assert "client_profile_json is 9437184 long" in s.handle("robot1", big).error
    assert builds == []


def test_wrong_fingerprints_build_a_variant_at_most_once(builds: list[str]) -> None:
    # a budget that holds one variant: each build evicts the other, so only the remembered fingerprints stop a rebuild
    s = make_server(builds, variant_build_interval=0.0, variant_budget_mb=0.001)
    for _ in range(3):
        for model_id in (COMPLETION, LOGITS):
            resp = s.handle("robot1", request(model_id))
            assert not resp.accepted and "fingerprint" in resp.error
    assert builds == [COMPLETION, LOGITS]


def test_a_robot_causes_at_most_one_variant_build_per_interval(builds: list[str]) -> None:
    s = make_server(builds, variant_build_interval=3600.0)
    s.handle("robot1", request(COMPLETION))
    resp = s.handle("robot1", request(LOGITS))
    assert not resp.accepted and "at most one per 3600 s" in resp.error
    s.handle("robot2", request(LOGITS, robot="robot2"))  # another robot is not held back
    assert builds == [COMPLETION, LOGITS]


def test_variants_beyond_the_memory_budget_are_evicted_least_recently_used(builds: list[str]) -> None:
    s = make_server(builds, variant_build_interval=0.0, variant_budget_mb=0.001)
    s.handle("robot1", request(COMPLETION))
    s.handle("robot1", request(LOGITS))
    assert s.variants.ids() == [LOGITS] and s.variants.evicted == 1
    assert LOGITS in s.health().values["replicas"] or int(s.health().values["replicas"]) == 2
