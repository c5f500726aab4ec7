"""The authenticated handshake's state machines (core/session_auth.py): who may open, renew and keep a session."""

from __future__ import annotations

import pytest

from intradp_ros.core import auth
from intradp_ros.core.codec import WireTile
from intradp_ros.core.session_auth import Beat, ClientKeys, Hello, NotThisSession, ServerSessions

SECRET = b"0123456789abcdef0123456789abcdef"
TILE = WireTile(7, 1, 3, 2, 0, 4, "float32", (1, 2), 0, 0, b"\1" * 8, "robot1")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _open(client: ClientKeys, server: ServerSessions, robot: str = "robot1") -> None:
    hello = client.hello()
    grant = server.hello(robot, hello.nonce, hello.proof, hello.renew)
    assert grant is not None
    server.commit(grant)
    client.accepted(hello, grant.nonce_s, grant.proof_s)


def test_an_opened_session_keys_both_tile_ends() -> None:
    client, server = ClientKeys(SECRET, "robot1"), ServerSessions(SECRET, clock=Clock())
    _open(client, server)
    tiles = server.tiles("robot1")
    assert client.tiles is not None and tiles is not None
    tiles.check(TILE, *client.tiles.sign(TILE))
    client.tiles.check(TILE, *tiles.sign(TILE))


def test_a_live_session_is_replaced_only_by_its_holder() -> None:
    clock = Clock()
    holder, server = ClientKeys(SECRET, "robot1"), ServerSessions(SECRET, idle_s=5.0, clock=clock)
    _open(holder, server)
    other = ClientKeys(SECRET, "robot1")  # knows the secret, not the session key (e.g. a second node named robot1)
    hello = other.hello()
    with pytest.raises(auth.AuthError, match="live session .* only its holder"):
        server.hello("robot1", hello.nonce, hello.proof, hello.renew)
    thief = ClientKeys(b"x" * 32, "robot1")  # knows neither
    hello = thief.hello()
    with pytest.raises(auth.AuthError, match="proof does not match the shared secret"):
        server.hello("robot1", hello.nonce, hello.proof, hello.renew)
    old_tiles = holder.tiles
    assert old_tiles is not None
    old_mac = old_tiles.sign(TILE)
    _open(holder, server)  # the holder proves the old key: renewed, with a new key
    tiles = server.tiles("robot1")
    assert tiles is not None
    with pytest.raises(auth.AuthError):
        tiles.check(TILE, *old_mac)  # tiles of the replaced session no longer verify
    assert server.refused == 2


def test_a_restarted_robot_gets_its_session_once_the_old_one_is_idle() -> None:
    clock = Clock()
    server = ServerSessions(SECRET, idle_s=5.0, clock=clock)
    _open(ClientKeys(SECRET, "robot1"), server)
    restarted = ClientKeys(SECRET, "robot1")
    clock.t += 4.0
    hello = restarted.hello()
    with pytest.raises(auth.AuthError, match="live session"):
        server.hello("robot1", hello.nonce, hello.proof, hello.renew)
    clock.t += 1.5  # no heartbeat or tile for 5.5 s: the holder is gone
    _open(restarted, server)


def test_heartbeats_keep_a_session_live_only_with_a_fresh_proof_of_its_key() -> None:
    clock = Clock()
    client, server = ClientKeys(SECRET, "robot1"), ServerSessions(SECRET, idle_s=5.0, clock=clock)
    assert client.beat() == Beat()  # no session yet: an empty heartbeat
    _open(client, server)
    clock.t += 4.0
    beat = client.beat()
    server.beat("robot1", beat.nonce, beat.proof)
    assert server.idle_for("robot1") == 0.0
    with pytest.raises(auth.AuthError, match="replayed"):
        server.beat("robot1", beat.nonce, beat.proof)  # a recorded heartbeat cannot keep a dead session live
    with pytest.raises(auth.AuthError, match="no proof"):
        server.beat("robot1", b"", b"")
    nonce = auth.new_nonce()
    with pytest.raises(NotThisSession, match="does not match the session key"):
        server.beat("robot1", nonce, auth.beat_proof(b"z" * 32, "robot1", nonce))


def test_authentic_tiles_keep_a_session_live_too() -> None:
    clock = Clock()
    client, server = ClientKeys(SECRET, "robot1"), ServerSessions(SECRET, idle_s=5.0, clock=clock)
    _open(client, server)
    clock.t += 30.0
    tiles = server.tiles("robot1")
    assert tiles is not None and client.tiles is not None
    tiles.check(TILE, *client.tiles.sign(TILE))
    assert server.idle_for("robot1") == 0.0


def test_an_unauthenticated_server_is_refused_by_a_client_with_a_key() -> None:
    client = ClientKeys(SECRET, "robot1")
    with pytest.raises(auth.AuthError, match="without a key file"):
        client.accepted(client.hello(), b"", b"")


def test_a_server_with_a_key_refuses_a_hello_without_proof() -> None:
    server = ServerSessions(SECRET)
    with pytest.raises(auth.AuthError, match="requires a key file"):
        server.hello("robot1", b"", b"", b"")


def test_without_a_secret_everything_is_inert() -> None:
    client, server = ClientKeys(None, "robot1"), ServerSessions(None)
    assert client.hello() == Hello() and client.tiles is None
    assert server.hello("robot1", b"", b"", b"") is None and server.tiles("robot1") is None
    server.beat("robot1", b"", b"")  # accepted: today's unauthenticated behaviour


def test_forget_drops_the_key() -> None:
    client, server = ClientKeys(SECRET, "robot1"), ServerSessions(SECRET)
    _open(client, server)
    server.forget("robot1")
    tiles = server.tiles("robot1")
    assert tiles is not None and not tiles.has_key and server.idle_for("robot1") is None
