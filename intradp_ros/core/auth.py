"""Authenticated sessions and tiles: a shared secret, a per-session key from fresh nonces, a keyed MAC per tile.

Why: tiles and handshakes arrive over plain TCPROS; without this any node that can reach a master can forge a
robot's down tiles (wrong published results) or take over its session. Both sides hold the same secret (a key file
named by a launch argument). The handshake proves knowledge of it without sending it:

    client: nonce_c, proof_c = HMAC(secret, "intradp/hello" | robot | nonce_c)
    server: checks proof_c (and that nonce_c is fresh), answers nonce_s, proof_s = HMAC(secret, "intradp/accept" | ...)
    both:   session_key = HMAC(secret, "intradp/session" | robot | nonce_c | nonce_s)

Every tile then carries `tile_mac(session_key, header fields, payload)` (keyed BLAKE2b, 16 bytes), checked in
constant time before anything else is done with it. A replayed tile of an earlier session fails the MAC (new
nonces, new key); within a session the executors refuse request ids that are not running and duplicate rows.
ROS-free: the ROS layer adds the MAC field to TensorTile and the nonces/proofs to the handshake service.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from intradp_ros.core.codec import WireTile

NONCE_BYTES = 16
MAC_BYTES = 16
MIN_SECRET_BYTES = 16
MAX_SECRET_BYTES = 4096
MAX_ROBOT_NAME = 256


class AuthError(ValueError):
    """A key file, handshake or tile that fails authentication; the message says which check failed."""


def load_secret(path: str | os.PathLike[str]) -> bytes:
    """The shared secret from a key file (its bytes, surrounding whitespace stripped).

    Refuses files that are missing, too short to be a key, or readable by other users (like ssh does for
    private keys), so a misconfigured robot fails at start instead of running unauthenticated by accident.
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError as e:
        raise AuthError(f"key file {p}: {e.strerror}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AuthError(f"key file {p} is accessible by other users (mode {stat.S_IMODE(st.st_mode):o}); chmod 600 it")
    if st.st_size > MAX_SECRET_BYTES:
        raise AuthError(f"key file {p} is {st.st_size} bytes; a key has at most {MAX_SECRET_BYTES}")
    secret = p.read_bytes().strip()
    if len(secret) < MIN_SECRET_BYTES:
        raise AuthError(f"key file {p} holds {len(secret)} bytes; a key needs at least {MIN_SECRET_BYTES}")
    return secret


def write_secret(path: str | os.PathLike[str], nbytes: int = 32) -> None:
    """Create a new random key file (hex text, mode 600) for both machines to share."""
    p = Path(path)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(nbytes) + "\n")


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_BYTES)


def _hmac(key: bytes, *parts: bytes) -> bytes:
    h = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        h.update(struct.pack("<I", len(part)))  # length-prefixed: no two field lists share an encoding
        h.update(part)
    return h.digest()


def _check_nonce(nonce: bytes, who: str) -> None:
    if len(nonce) != NONCE_BYTES:
        raise AuthError(f"{who} nonce has {len(nonce)} bytes, {NONCE_BYTES} expected")


def _robot_bytes(robot: str) -> bytes:
    b = robot.encode()
    if not 0 < len(b) <= MAX_ROBOT_NAME:
        raise AuthError(f"robot name must have 1..{MAX_ROBOT_NAME} bytes")
    return b


def hello_proof(secret: bytes, robot: str, nonce_c: bytes) -> bytes:
    """The client's proof that it holds the secret, bound to its robot name and fresh nonce."""
    _check_nonce(nonce_c, "client")
    return _hmac(secret, b"intradp/hello", _robot_bytes(robot), nonce_c)


def accept_proof(secret: bytes, robot: str, nonce_c: bytes, nonce_s: bytes) -> bytes:
    """The server's proof, so a client never sends tiles to an impostor server."""
    _check_nonce(nonce_c, "client")
    _check_nonce(nonce_s, "server")
    return _hmac(secret, b"intradp/accept", _robot_bytes(robot), nonce_c, nonce_s)


def session_key(secret: bytes, robot: str, nonce_c: bytes, nonce_s: bytes) -> bytes:
    """The per-session key both sides derive; never sent."""
    return _hmac(secret, b"intradp/session", _robot_bytes(robot), nonce_c, nonce_s)


class NonceRegistry:
    """Client nonces seen recently, so a recorded handshake cannot be replayed to reset a robot's session."""

    def __init__(self, keep: int = 4096, ttl_s: float = 600.0) -> None:
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self.keep, self.ttl_s = keep, ttl_s

    def fresh(self, nonce: bytes, now: float | None = None) -> bool:
        """True (and remembered) the first time a nonce is offered within the time-to-live."""
        now = time.monotonic() if now is None else now
        while self._seen and (len(self._seen) >= self.keep or next(iter(self._seen.values())) < now - self.ttl_s):
            self._seen.popitem(last=False)
        if nonce in self._seen:
            return False
        self._seen[nonce] = now
        return True


@dataclass(frozen=True)
class ServerAccept:
    """What the server answers to a verified hello, and the key it keeps for the session."""

    nonce_s: bytes
    proof_s: bytes
    key: bytes


def server_accept(secret: bytes, robot: str, nonce_c: bytes, proof_c: bytes, registry: NonceRegistry) -> ServerAccept:
    """Verify a client's hello (proof first, in constant time, then nonce freshness) and derive the session.

    Raises AuthError before any other work is done, so a caller without the secret costs the server one HMAC.
    """
    if not hmac.compare_digest(hello_proof(secret, robot, nonce_c), proof_c):
        raise AuthError(f"handshake for robot {robot!r}: proof does not match the shared secret")
    if not registry.fresh(nonce_c):
        raise AuthError(f"handshake for robot {robot!r}: replayed client nonce")
    nonce_s = new_nonce()
    return ServerAccept(
        nonce_s, accept_proof(secret, robot, nonce_c, nonce_s), session_key(secret, robot, nonce_c, nonce_s)
    )


def client_session(secret: bytes, robot: str, nonce_c: bytes, nonce_s: bytes, proof_s: bytes) -> bytes:
    """Verify the server's answer and return the session key."""
    if not hmac.compare_digest(accept_proof(secret, robot, nonce_c, nonce_s), proof_s):
        raise AuthError(f"handshake for robot {robot!r}: the server's proof does not match the shared secret")
    return session_key(secret, robot, nonce_c, nonce_s)


_HEADER = struct.Struct("<QIIBIIBB")  # request, plan, node, axis, row_start, row_stop, codec, flags


def tile_mac(key: bytes, wire: WireTile, seq: int = 0) -> bytes:
    """Keyed BLAKE2b over the sender's sequence number, every header field and the payload: a tile that differs in
    any of them fails."""
    h = hashlib.blake2b(key=key[:64], digest_size=MAC_BYTES, person=b"intradp-tile")
    h.update(struct.pack("<Q", seq))
    h.update(
        _HEADER.pack(
            wire.request_id,
            wire.plan_id,
            wire.node_id,
            wire.axis,
            wire.row_start,
            wire.row_stop,
            wire.codec,
            wire.flags,
        )
    )
    meta = f"{wire.dtype}|{','.join(str(int(d)) for d in wire.shape)}|{wire.robot}".encode()
    h.update(struct.pack("<I", len(meta)))
    h.update(meta)
    h.update(wire.data)
    return h.digest()


def verify_tile_mac(key: bytes, wire: WireTile, mac: bytes, seq: int = 0) -> None:
    """Raise AuthError unless `mac` is the tile's MAC under `key` (constant-time comparison)."""
    if len(mac) != MAC_BYTES:
        raise AuthError(f"tile MAC has {len(mac)} bytes, {MAC_BYTES} expected")
    if not hmac.compare_digest(tile_mac(key, wire, seq), mac):
        raise AuthError("tile MAC does not match (forged, corrupted or from another session)")


def direction_keys(session_key: bytes) -> tuple[bytes, bytes]:
    """(up key, down key) of a session: each direction MACs with its own key, so a robot's up tile reflected
    back on its down topic (or the reverse) fails the MAC."""
    return _hmac(session_key, b"intradp/up"), _hmac(session_key, b"intradp/down")


def renew_proof(old_key: bytes, robot: str, nonce_c: bytes) -> bytes:
    """The holder's proof, in a new hello, that it holds the live session's key (only it may replace it)."""
    _check_nonce(nonce_c, "client")
    return _hmac(old_key, b"intradp/renew", _robot_bytes(robot), nonce_c)


def beat_proof(key: bytes, robot: str, nonce: bytes) -> bytes:
    """A heartbeat's proof that it comes from the session's holder (keeps the session live)."""
    _check_nonce(nonce, "heartbeat")
    return _hmac(key, b"intradp/beat", _robot_bytes(robot), nonce)


class TileAuth:
    """The MAC keys of one end of a tile link (side 'robot' or 'server').

    Without a session key (before the handshake, or after a failed one) every tile is refused both ways: a
    configured secret never falls back to an unauthenticated link. Each sent tile carries the next number of this
    session's sequence under its MAC, and a receiver accepts only numbers above the last one it accepted, so an
    authentic tile replayed within its session is refused too (one sender per direction and TCP keep them in
    order). `rejected` / `replayed` count refused tiles; `last_ok` is the time of the newest authentic tile (the
    server's session liveness).
    """

    def __init__(
        self, side: str, session_key: bytes | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if side not in ("robot", "server"):
            raise ValueError("side must be 'robot' or 'server'")
        self.side, self.clock = side, clock
        self._lock = threading.Lock()
        self._send: bytes | None = None
        self._recv: bytes | None = None
        self.rejected = 0
        self.replayed = 0
        self.last_ok: float | None = None
        self._sent_seq = 0
        self._recv_seq = 0
        self.set_session_key(session_key)

    def set_session_key(self, session_key: bytes | None) -> None:
        """Install a new session's key (None: refuse every tile until the next one)."""
        if session_key is None:
            send = recv = None
        else:
            up, down = direction_keys(session_key)
            send, recv = (up, down) if self.side == "robot" else (down, up)
        with self._lock:
            self._send, self._recv = send, recv
            self._sent_seq = self._recv_seq = 0

    @property
    def has_key(self) -> bool:
        return self._send is not None

    def sign(self, wire: WireTile) -> tuple[int, bytes]:
        """(sequence number, MAC) of an outgoing tile; AuthError when no session key is held yet."""
        with self._lock:
            key = self._send
            if key is None:
                raise AuthError("no session key yet: tiles are sent only after an authenticated handshake")
            self._sent_seq += 1
            seq = self._sent_seq
        return seq, tile_mac(key, wire, seq)

    def check(self, wire: WireTile, seq: int, mac: bytes) -> None:
        """Raise AuthError (and count it) unless `mac` is the incoming tile's MAC under this session's key and its
        sequence number is above every one accepted in this session (a replay)."""
        with self._lock:
            key, floor = self._recv, self._recv_seq
        try:
            if key is None:
                raise AuthError("no session key yet: tile refused")
            verify_tile_mac(key, wire, mac, seq)
        except AuthError:
            with self._lock:
                self.rejected += 1
            raise
        with self._lock:
            if key is not self._recv or seq <= self._recv_seq:  # re-keyed meanwhile, or a replay
                self.replayed += 1
                raise AuthError(f"tile sequence number {seq} not above {max(floor, self._recv_seq)}: replayed")
            self._recv_seq = seq
        self.last_ok = self.clock()


def mac_cost_s_per_mb(repeats: int = 5, nbytes: int = 1 << 20) -> float:
    """Measured seconds to MAC one MB on this CPU (median of `repeats`): the cost model charges it per byte."""
    key = new_nonce() * 2
    payload = secrets.token_bytes(nbytes)
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        tile_mac(key, WireTile(1, 1, 1, 0, 0, 1, "uint8", (nbytes,), 0, 0, payload, "r"))
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2] * (1 << 20) / nbytes
