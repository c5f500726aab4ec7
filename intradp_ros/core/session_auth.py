"""The authenticated handshake as state machines, ROS-free: the robot's `ClientKeys` and the server's
`ServerSessions` (core/auth.py has the primitives; ros/handshake.py and ros/server_node.py carry the fields).

Why: a handshake must prove the shared secret before the server does any work, and a robot's live session may be
replaced only by its holder. Rules (docs/security.md):
- hello: client nonce + HMAC proof of the secret; the server answers its nonce + proof; both derive the session
  key, from which each direction's tile MAC key is derived (`TileAuth`).
- a hello for a robot whose session is live (an authentic heartbeat or tile within `idle_s`) must also prove the
  live session's key (`renew_proof`): a caller that only knows the secret cannot take a running robot's session.
  A robot that restarted lost its key: its new hello is accepted once the old session has been idle `idle_s`.
- heartbeats prove the session key over a fresh nonce; only they (and authentic tiles) keep a session live, so a
  recorded heartbeat cannot be replayed to block a restarted robot.
Without a secret both classes are inert (today's unauthenticated behaviour: any caller may handshake).
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from intradp_ros.core.auth import (
    AuthError,
    NonceRegistry,
    TileAuth,
    beat_proof,
    client_session,
    hello_proof,
    new_nonce,
    renew_proof,
    server_accept,
)
from intradp_ros.core.health import WARN, Health

DEFAULT_IDLE_S = 5.0  # a session without authentic heartbeats or tiles for this long may be taken by a new hello


class NotThisSession(AuthError):
    """A heartbeat proven with another key than the robot's current session's: that session was replaced (the
    caller should handshake again, renewing is then refused while the new holder is live)."""


@dataclass(frozen=True)
class Hello:
    """The auth fields of a full handshake request (all empty without a secret)."""

    nonce: bytes = b""
    proof: bytes = b""
    renew: bytes = b""  # proof of the previous session's key ("" for a first session)


@dataclass(frozen=True)
class Beat:
    """The auth fields of a heartbeat (empty without a secret or before the first session)."""

    nonce: bytes = b""
    proof: bytes = b""


class ClientKeys:
    """The robot's side: makes hello and heartbeat proofs, checks the server's answer, installs the session key
    into the robot's `TileAuth` (its tile link)."""

    def __init__(self, secret: bytes | None, robot: str) -> None:
        self.secret, self.robot = secret, robot
        self.tiles: TileAuth | None = TileAuth("robot") if secret else None
        self._key: bytes | None = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.secret is not None

    def hello(self) -> Hello:
        """Fields of a new hello: a fresh nonce, the secret's proof and, while a key is held, the renew proof."""
        if self.secret is None:
            return Hello()
        nonce = new_nonce()
        with self._lock:
            old = self._key
        renew = renew_proof(old, self.robot, nonce) if old is not None else b""
        return Hello(nonce, hello_proof(self.secret, self.robot, nonce), renew)

    def accepted(self, hello: Hello, nonce_s: bytes, proof_s: bytes) -> None:
        """The server accepted `hello`: check its proof (AuthError for an impostor or an unauthenticated server)
        and install the new session key for tiles."""
        if self.secret is None:
            return
        if not nonce_s or not proof_s:
            raise AuthError("the server answered without proof: it runs without a key file (unauthenticated)")
        key = client_session(self.secret, self.robot, hello.nonce, bytes(nonce_s), bytes(proof_s))
        with self._lock:
            self._key = key
        assert self.tiles is not None
        self.tiles.set_session_key(key)

    def beat(self) -> Beat:
        """Fields of a heartbeat: a fresh nonce and its proof under the session key (empty before a session)."""
        with self._lock:
            key = self._key
        if self.secret is None or key is None:
            return Beat()
        nonce = new_nonce()
        return Beat(nonce, beat_proof(key, self.robot, nonce))


@dataclass(frozen=True)
class Grant:
    """An accepted hello not yet committed: what the server answers and the key it will hold."""

    robot: str
    nonce_s: bytes
    proof_s: bytes
    key: bytes


@dataclass
class _Held:
    key: bytes
    tiles: TileAuth
    last_beat: float


class ServerSessions:
    """The server's side for every robot it serves: checks hellos and heartbeats, holds each session's key and
    the robot's `TileAuth` (the same object for the whole life of the server, re-keyed per session)."""

    def __init__(
        self, secret: bytes | None, idle_s: float = DEFAULT_IDLE_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.secret, self.idle_s, self.clock = secret, float(idle_s), clock
        self._nonces = NonceRegistry()  # hello nonces of every robot
        self._beat_nonces: dict[str, NonceRegistry] = {}  # per robot: 2 Hz heartbeats fit its 4096 x 10 min window
        self._held: dict[str, _Held] = {}
        self._tiles: dict[str, TileAuth] = {}
        self._lock = threading.Lock()
        self.refused = 0  # hellos and heartbeats refused for authentication

    @property
    def enabled(self) -> bool:
        return self.secret is not None

    def tiles(self, robot: str) -> TileAuth | None:
        """The robot's tile MAC state for its transport (None: unauthenticated server)."""
        if self.secret is None:
            return None
        with self._lock:
            t = self._tiles.get(robot)
            if t is None:
                t = self._tiles[robot] = TileAuth("server", clock=self.clock)
            return t

    def idle_for(self, robot: str) -> float | None:
        """Seconds since the robot's session last showed life (authentic heartbeat or tile); None without one."""
        with self._lock:
            held = self._held.get(robot)
        if held is None:
            return None
        last = max(held.last_beat, held.tiles.last_ok if held.tiles.last_ok is not None else held.last_beat)
        return max(0.0, self.clock() - last)

    def hello(self, robot: str, nonce_c: bytes, proof_c: bytes, renew: bytes) -> Grant | None:
        """Check a full handshake's auth fields first, before any other work (AuthError names the failed check);
        None without a secret. The session is replaced only by `commit`."""
        if self.secret is None:
            return None
        try:
            if not nonce_c or not proof_c:
                raise AuthError(f"handshake for robot {robot!r} carries no proof: this server requires a key file")
            if not hmac.compare_digest(hello_proof(self.secret, robot, nonce_c), proof_c):
                raise AuthError(f"handshake for robot {robot!r}: proof does not match the shared secret")
            with self._lock:
                held = self._held.get(robot)
            idle = self.idle_for(robot)
            if (
                held is not None
                and idle is not None
                and idle < self.idle_s
                and not self._renews(held, robot, nonce_c, renew)
            ):
                raise AuthError(
                    f"robot {robot!r} has a live session (active {idle:.1f} s ago) and this hello does not prove "
                    f"its key: only its holder may replace it (a restarted robot is accepted after {self.idle_s:g} "
                    "s without the old session's heartbeats)"
                )
            accept = server_accept(self.secret, robot, nonce_c, proof_c, self._nonces)
        except AuthError:
            with self._lock:
                self.refused += 1
            raise
        return Grant(robot, accept.nonce_s, accept.proof_s, accept.key)

    @staticmethod
    def _renews(held: _Held, robot: str, nonce_c: bytes, renew: bytes) -> bool:
        """The hello proves the live session's key (its holder renews it)."""
        return bool(renew) and hmac.compare_digest(renew_proof(held.key, robot, nonce_c), renew)

    def commit(self, grant: Grant | None) -> None:
        """The handshake succeeded: `grant`'s key is now the robot's session key (its tiles use it at once)."""
        if grant is None:
            return
        tiles = self.tiles(grant.robot)
        assert tiles is not None
        tiles.set_session_key(grant.key)
        with self._lock:
            self._held[grant.robot] = _Held(grant.key, tiles, self.clock())

    def beat(self, robot: str, nonce: bytes, proof: bytes) -> None:
        """Check a heartbeat of the robot's live session (AuthError otherwise) and mark the session live."""
        if self.secret is None:
            return
        with self._lock:
            held = self._held.get(robot)
        try:
            if held is None:
                raise AuthError(f"heartbeat for robot {robot!r}: no authenticated session")
            if len(nonce) == 0 or len(proof) == 0:
                raise AuthError(f"heartbeat for robot {robot!r} carries no proof: this server requires a key file")
            if not hmac.compare_digest(beat_proof(held.key, robot, nonce), proof):
                raise NotThisSession(f"heartbeat for robot {robot!r}: proof does not match the session key")
            with self._lock:
                seen = self._beat_nonces.setdefault(robot, NonceRegistry())
                fresh = seen.fresh(nonce)
            if not fresh:
                raise AuthError(f"heartbeat for robot {robot!r}: replayed nonce")
        except AuthError:
            with self._lock:
                self.refused += 1
            raise
        with self._lock:
            held.last_beat = self.clock()

    def forget(self, robot: str) -> None:
        """The robot's session was closed: its key is dropped and its tiles are refused until a new one."""
        with self._lock:
            self._held.pop(robot, None)
            t = self._tiles.get(robot)
        if t is not None:
            t.set_session_key(None)


def security_status(authenticated: bool, counts: Mapping[str, int]) -> Health:
    """A node's link security as a diagnostic status: WARN while unauthenticated (no key file), WARN with the counts
    while tiles or handshakes are being refused (someone without the key is trying), OK otherwise.

    `counts`: cause -> number (forged_tiles, refused_handshakes, refused_busy, refused_unannounced, ...)."""
    h = Health()
    h.values["authenticated"] = "yes" if authenticated else "NO"
    for k, v in counts.items():
        h.values[k] = str(int(v))
    if not authenticated:
        h.flag(WARN, "link UNAUTHENTICATED (no key_file): anyone on the network can forge tiles or take sessions")
    refused = {k: int(v) for k, v in counts.items() if int(v) > 0}
    if refused:
        h.flag(WARN, "refused: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in sorted(refused.items())))
    return h.done("authenticated handshakes and tiles")
