"""Authenticated sessions and tiles (core/auth.py): proofs, session keys, tile MACs, key files."""

from __future__ import annotations

import dataclasses
import os

import pytest

from intradp_ros.core import auth
from intradp_ros.core.codec import WireTile

SECRET = b"0123456789abcdef0123456789abcdef"


def _handshake(secret_client: bytes = SECRET, secret_server: bytes = SECRET) -> tuple[bytes, bytes]:
    registry = auth.NonceRegistry()
    nonce_c = auth.new_nonce()
    accept = auth.server_accept(
        secret_server, "robot1", nonce_c, auth.hello_proof(secret_client, "robot1", nonce_c), registry
    )
    key_c = auth.client_session(secret_client, "robot1", nonce_c, accept.nonce_s, accept.proof_s)
    return key_c, accept.key


def _tile(**changes: object) -> WireTile:
    wire = WireTile(7, 11, 3, 2, 0, 4, "float32", (1, 8, 4, 5), 0, 0, bytes(range(160)) * 4, "robot1")
    return dataclasses.replace(wire, **changes)


def test_both_sides_derive_the_same_session_key_and_each_session_a_new_one() -> None:
    key_c, key_s = _handshake()
    assert key_c == key_s
    again_c, _ = _handshake()
    assert again_c != key_c  # fresh nonces: a recorded session's tiles do not verify in the next one


def test_a_client_without_the_secret_is_refused_before_any_work() -> None:
    with pytest.raises(auth.AuthError, match="proof does not match"):
        _handshake(secret_client=b"x" * 32)


def test_a_server_without_the_secret_is_refused_by_the_client() -> None:
    registry = auth.NonceRegistry()
    nonce_c = auth.new_nonce()
    impostor = auth.ServerAccept(auth.new_nonce(), b"\0" * 32, b"k" * 32)
    with pytest.raises(auth.AuthError, match="server's proof"):
        auth.client_session(SECRET, "robot1", nonce_c, impostor.nonce_s, impostor.proof_s)
    assert registry.fresh(nonce_c)


def test_a_replayed_hello_cannot_reset_the_session() -> None:
    registry = auth.NonceRegistry()
    nonce_c = auth.new_nonce()
    proof = auth.hello_proof(SECRET, "robot1", nonce_c)
    auth.server_accept(SECRET, "robot1", nonce_c, proof, registry)
    with pytest.raises(auth.AuthError, match="replayed"):
        auth.server_accept(SECRET, "robot1", nonce_c, proof, registry)


def test_a_hello_for_one_robot_is_not_valid_for_another() -> None:
    nonce_c = auth.new_nonce()
    with pytest.raises(auth.AuthError):
        auth.server_accept(SECRET, "robot2", nonce_c, auth.hello_proof(SECRET, "robot1", nonce_c), auth.NonceRegistry())


def test_nonce_registry_forgets_after_its_time_to_live() -> None:
    registry = auth.NonceRegistry(ttl_s=10.0)
    assert registry.fresh(b"a" * 16, now=0.0)
    assert not registry.fresh(b"a" * 16, now=5.0)
    assert registry.fresh(b"b" * 16, now=20.0)  # drops the expired entry on the way
    assert registry.fresh(b"a" * 16, now=21.0)


@pytest.mark.parametrize(
    "change",
    [
        {"request_id": 8},
        {"plan_id": 12},
        {"node_id": 4},
        {"axis": 1},
        {"row_start": 1},
        {"row_stop": 5},
        {"dtype": "int32"},
        {"shape": (1, 8, 5, 4)},
        {"codec": 1},
        {"flags": 2},
        {"robot": "robot2"},
        {"data": b"\0" + bytes(range(160)) * 4},
    ],
)
def test_a_tile_changed_in_any_field_fails_its_mac(change: dict[str, object]) -> None:
    key, _ = _handshake()
    mac = auth.tile_mac(key, _tile())
    auth.verify_tile_mac(key, _tile(), mac)
    with pytest.raises(auth.AuthError, match="does not match"):
        auth.verify_tile_mac(key, _tile(**change), mac)


def test_a_tile_of_another_session_fails_its_mac() -> None:
    key_a, _ = _handshake()
    key_b, _ = _handshake()
    with pytest.raises(auth.AuthError):
        auth.verify_tile_mac(key_b, _tile(), auth.tile_mac(key_a, _tile()))
    with pytest.raises(auth.AuthError, match="bytes"):
        auth.verify_tile_mac(key_a, _tile(), b"short")


def test_key_files_must_be_private_and_long_enough(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "intradp.key")
    auth.write_secret(path)
    assert len(auth.load_secret(path)) == 64
    with pytest.raises(FileExistsError):
        auth.write_secret(path)  # never overwrites a key both machines share
    os.chmod(path, 0o644)
    with pytest.raises(auth.AuthError, match="other users"):
        auth.load_secret(path)
    short = os.path.join(tmp_path, "short.key")
    with open(short, "w") as f:
        f.write("abc\n")
    os.chmod(short, 0o600)
    with pytest.raises(auth.AuthError, match="at least"):
        auth.load_secret(short)
    with pytest.raises(auth.AuthError, match="No such file"):
        auth.load_secret(os.path.join(tmp_path, "missing.key"))


def test_mac_cost_is_measured() -> None:
    assert auth.mac_cost_s_per_mb(repeats=1, nbytes=1 << 16) > 0


def test_tile_auth_signs_with_one_direction_and_checks_with_the_other() -> None:
    key = b"s" * 32
    robot, server = auth.TileAuth("robot", key), auth.TileAuth("server", key)
    up = _tile()
    server.check(up, *robot.sign(up))  # robot -> server
    robot.check(up, *server.sign(up))  # server -> robot
    with pytest.raises(auth.AuthError):
        robot.check(up, *robot.sign(up))  # a robot's up tile reflected back down fails
    assert robot.rejected == 1 and server.rejected == 0 and server.last_ok is not None


def test_tile_auth_refuses_an_authentic_tile_replayed_within_its_session() -> None:
    key = b"s" * 32
    robot, server = auth.TileAuth("robot", key), auth.TileAuth("server", key)
    first, second = robot.sign(_tile()), robot.sign(_tile(row_start=4, row_stop=8))
    assert (first[0], second[0]) == (1, 2)
    server.check(_tile(), *first)
    server.check(_tile(row_start=4, row_stop=8), *second)
    with pytest.raises(auth.AuthError, match="replayed"):
        server.check(_tile(), *first)  # a recorded tile sent again: its number is not above the last one
    with pytest.raises(auth.AuthError, match="does not match"):
        server.check(_tile(), 3, first[1])  # a new number on an old MAC fails the MAC
    assert server.replayed == 1 and server.rejected == 1
    server.set_session_key(key)  # a new session: numbers start again
    robot.set_session_key(key)
    server.check(_tile(), *robot.sign(_tile()))


def test_tile_auth_without_a_session_key_refuses_both_ways() -> None:
    t = auth.TileAuth("server")
    with pytest.raises(auth.AuthError, match="no session key"):
        t.sign(_tile())
    with pytest.raises(auth.AuthError, match="no session key"):
        t.check(_tile(), 1, b"\0" * auth.MAC_BYTES)
    assert t.rejected == 1
    t.set_session_key(b"k" * 32)
    t.set_session_key(None)  # a closed session: refused again
    assert not t.has_key
