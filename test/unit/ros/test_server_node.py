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


# ------------------------------------------------------------------------------ authentication (docs/security.md)
SECRET = b"0123456789abcdef0123456789abcdef"


@pytest.fixture
def keyed_server(tmp_path) -> IntraDPServer:
    key = tmp_path / "intradp.key"
    key.write_bytes(SECRET)
    key.chmod(0o600)
    return IntraDPServer(ServerSettings(robots=["robot1"], device="cpu", key_file=str(key)))


def _hello(secret: bytes = SECRET, model_id: str = "nothing_served", robot: str = "robot1"):
    from intradp_ros.core.session_auth import ClientKeys
    from intradp_ros.srv import HandshakeRequest

    hello = ClientKeys(secret, robot).hello()
    return HandshakeRequest(
        robot=robot,
        model_id=model_id,
        client_profile_json="{}",
        nonce=hello.nonce,
        proof=hello.proof,
        renew_proof=hello.renew,
    )


def test_with_a_key_a_handshake_is_checked_before_anything_else(keyed_server: IntraDPServer, monkeypatch) -> None:
    import rospy

    from intradp_ros.srv import HandshakeRequest

    monkeypatch.setattr(rospy, "logerr_throttle", lambda *a: None)  # the model check's log needs a node

    for req in (
        HandshakeRequest(robot="robot1", model_id="nothing_served", client_profile_json="{}"),
        _hello(b"x" * 32),
    ):
        resp = keyed_server.handle("robot1", req)
        assert not resp.accepted and resp.error.startswith("authentication:"), resp.error  # not the model's refusal
        assert not resp.server_proof
    resp = keyed_server.handle("robot1", _hello())  # the right secret: on to the model checks
    assert not resp.accepted and "is not served here" in resp.error
    assert keyed_server.auth.refused == 2
    h = keyed_server.security()
    assert h.values["authenticated"] == "yes" and h.values["refused_handshakes"] == "2" and h.level == 1


def test_with_a_key_a_heartbeat_without_a_session_is_told_no_session(keyed_server: IntraDPServer) -> None:
    from intradp_ros.srv import HandshakeRequest

    assert keyed_server._authenticate("robot1", HandshakeRequest(robot="robot1")) == (None, "")


def test_without_a_key_the_server_warns_and_accepts_unproven_handshakes(server: IntraDPServer) -> None:
    from intradp_ros.srv import HandshakeRequest

    assert server._authenticate("robot1", HandshakeRequest(robot="robot1", client_profile_json="{}")) == (None, "")
    h = server.security()
    assert h.values["authenticated"] == "NO" and "UNAUTHENTICATED" in h.message and h.level == 1


def test_a_readable_key_file_stops_the_server(tmp_path) -> None:
    from intradp_ros.core.auth import AuthError

    key = tmp_path / "k"
    key.write_bytes(SECRET)
    key.chmod(0o644)
    with pytest.raises(AuthError, match="accessible by other users"):
        IntraDPServer(ServerSettings(robots=["robot1"], device="cpu", key_file=str(key)))


def test_a_heartbeat_of_a_replaced_session_is_told_to_handshake_again(keyed_server: IntraDPServer) -> None:
    from intradp_ros.core.session_auth import ClientKeys
    from intradp_ros.ros.handshake import NO_SESSION
    from intradp_ros.srv import HandshakeRequest

    holder, replaced = ClientKeys(SECRET, "robot1"), ClientKeys(SECRET, "robot1")
    for keys in (replaced, holder):  # `replaced` held the session first; `holder` took it once it was idle
        hello = keys.hello()
        grant = keyed_server.auth.hello("robot1", hello.nonce, hello.proof, hello.renew)
        keyed_server.auth.commit(grant)
        assert grant is not None
        keys.accepted(hello, grant.nonce_s, grant.proof_s)
        keyed_server.auth._held["robot1"].last_beat -= 60.0  # idle: the next hello may take it
    keyed_server.sessions["robot1"] = object()  # type: ignore[assignment] - only its presence matters here
    beat = holder.beat()
    assert keyed_server._authenticate(
        "robot1", HandshakeRequest(robot="robot1", nonce=beat.nonce, proof=beat.proof)
    ) == (None, "")
    beat = replaced.beat()
    req = HandshakeRequest(robot="robot1", nonce=beat.nonce, proof=beat.proof)
    assert keyed_server._authenticate("robot1", req) == (None, NO_SESSION)


def test_the_camera_option_reaches_the_plan_book_only_verified_and_with_the_servers_decode(
    server: IntraDPServer,
) -> None:
    """The server keeps a client's camera entry only for its own decoder; its profile then carries its measured
    decode (the bundled photograph before any probe, a probe's frame after one), and no entry otherwise (a derived
    server profile would carry the robot's)."""
    from types import SimpleNamespace

    import torch
    from sched_toys import conv_chain, uniform_profile

    from intradp_ros.core.codec_choice import camera_entry, camera_profile
    from intradp_ros.core.codecs.camera import DecoderIdentity, local_decoder
    from intradp_ros.models.camera_input import sample_camera_payload

    g, _x = conv_chain(2, h=8)
    plain = uniform_profile(g, 1e-3)
    offered = plain.with_codecs([camera_profile("robot", 0.1)])
    rep = SimpleNamespace(model_id="cam-test", example=torch.zeros((1, 3, 64, 96), dtype=torch.uint8))
    mine = SimpleNamespace(decoder_json=local_decoder().to_json())
    other = SimpleNamespace(decoder_json=DecoderIdentity("libjpeg", "6b", "fast").to_json())
    assert camera_entry(server._camera_checked("r", offered, mine).codecs) is not None
    assert camera_entry(server._camera_checked("r", offered, other).codecs) is None
    derived = offered.scaled(0.1, "server")  # a server derived from the robot carries the robot's entry
    assert camera_entry(server._with_camera(rep, plain, derived).codecs) is None
    server.camera_decode.pop("cam-test", None)
    with_cam = server._with_camera(rep, offered, derived)
    entry = camera_entry(with_cam.codecs)
    assert entry is not None and entry.side == "server" and entry.decode_s_per_mb > 0
    server.camera_decode["cam-test"] = 123.0
    payload = sample_camera_payload((64, 96))
    server._time_camera_decode(rep, payload)
    assert server.camera_decode["cam-test"] != 123.0
