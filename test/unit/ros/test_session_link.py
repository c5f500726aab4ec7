"""The robot's handshake call with a key (ros/session_link.py): proofs go out, the server's proof is checked, the
session key reaches the tile link, and an unauthenticated server is refused."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("rospy")

from intradp_ros.core.robot_session import SessionIds
from intradp_ros.core.session_auth import ClientKeys, ServerSessions
from intradp_ros.ros import session_link
from intradp_ros.ros.handshake import HandshakeOutcome
from intradp_ros.ros.names import RobotNames
from intradp_ros.srv import HandshakeResponse

SECRET = b"0123456789abcdef0123456789abcdef"
IDS = SessionIds("robot1", "m", "w", "g")


def _fake_server(monkeypatch: Any, sessions: ServerSessions | None) -> list[Any]:
    """call_handshake answered by `sessions` (None: a server without a key, which sends no proof)."""
    seen: list[Any] = []

    def call(robot: str, req: Any, timeout: float, service: str | None = None) -> HandshakeOutcome:
        seen.append(req)
        if sessions is None:
            return HandshakeOutcome(HandshakeResponse(accepted=True, plan_table_json="{}"))
        if req.client_profile_json:
            grant = sessions.hello(robot, bytes(req.nonce), bytes(req.proof), bytes(req.renew_proof))
            sessions.commit(grant)
            assert grant is not None
            return HandshakeOutcome(
                HandshakeResponse(accepted=True, server_nonce=grant.nonce_s, server_proof=grant.proof_s)
            )
        sessions.beat(robot, bytes(req.nonce), bytes(req.proof))
        return HandshakeOutcome(HandshakeResponse(accepted=True))

    monkeypatch.setattr(session_link, "call_handshake", call)
    return seen


def test_a_keyed_handshake_installs_the_session_key_and_heartbeats_prove_it(monkeypatch: Any) -> None:
    server = ServerSessions(SECRET)
    seen = _fake_server(monkeypatch, server)
    keys = ClientKeys(SECRET, "robot1")
    call = session_link.handshake_call(RobotNames("robot1"), keys)
    assert call(IDS, "{}", 1.0).accepted
    assert len(seen[0].nonce) == 16 and len(seen[0].proof) == 32 and not seen[0].renew_proof
    assert keys.tiles is not None and keys.tiles.has_key
    assert call(IDS, "", 1.0).accepted  # the heartbeat's proof verified by the server
    assert len(seen[1].proof) == 32
    assert call(IDS, "{}", 1.0).accepted and len(seen[2].renew_proof) == 32  # renewing proves the old key


def test_a_server_without_proof_is_refused_and_no_key_is_installed(monkeypatch: Any) -> None:
    _fake_server(monkeypatch, None)
    keys = ClientKeys(SECRET, "robot1")
    reply = session_link.handshake_call(RobotNames("robot1"), keys)(IDS, "{}", 1.0)
    assert reply.answered and not reply.accepted and "server not authenticated" in reply.reason
    assert keys.tiles is not None and not keys.tiles.has_key


def test_without_a_key_requests_carry_no_auth_fields(monkeypatch: Any) -> None:
    seen = _fake_server(monkeypatch, None)
    assert session_link.handshake_call(RobotNames("robot1"))(IDS, "{}", 1.0).accepted
    assert not seen[0].nonce and not seen[0].proof
