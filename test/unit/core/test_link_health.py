"""link_health: distributed only while a session is accepted and the tile link is connected."""

from __future__ import annotations

from intradp_ros.core.link_health import CONNECTING, DOWN, UP, LinkHealth


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_starts_local_until_handshake_and_peer() -> None:
    h = LinkHealth(clock=Clock())
    assert h.state == CONNECTING and not h.distributed_allowed()
    assert h.on_peer(True) is None and not h.distributed_allowed()
    assert "up" in h.on_session(True, "handshake accepted")
    assert h.distributed_allowed()


def test_failure_goes_local_at_once_and_heartbeat_brings_it_back() -> None:
    h = LinkHealth(clock=Clock())
    h.on_session(True, "ok")
    h.on_peer(True)
    assert h.on_failure("tile lost") is not None
    assert h.state == DOWN and not h.distributed_allowed()
    assert h.on_peer(True) is None and not h.distributed_allowed()  # peer alone is not enough
    h.on_session(True, "heartbeat answered")
    assert h.state == UP


def test_peer_loss_and_failed_heartbeat_go_down() -> None:
    h = LinkHealth(clock=Clock())
    h.on_session(True, "ok")
    h.on_peer(True)
    h.on_peer(False)
    assert h.state == DOWN
    h.on_peer(True)
    assert h.state == UP
    h.on_session(False, "heartbeat failed")
    assert h.state == DOWN
    assert [s for _, s, _ in h.history] == [UP, DOWN, UP, DOWN]


def test_failed_heartbeat_before_any_session_stays_connecting() -> None:
    h = LinkHealth(clock=Clock())
    assert h.on_session(False, "no server") is None
    assert h.state == CONNECTING
