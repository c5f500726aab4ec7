"""Client-side state of the link to the server: is distributed inference allowed for the next frame?

States: `connecting` (no accepted handshake yet), `up` (handshake accepted, peer connected), `down`
(a frame failed, a heartbeat failed or the peer disconnected). Frames run locally unless the state is `up`.
Going down happens at once on a failure; coming back needs an accepted handshake (or heartbeat) and a
connected tile link, so the client returns to distributed inference without a restart. ROS-free, so the
transitions are unit-tested; the node feeds it events and asks `distributed_allowed()`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from intradp_ros.core.vocabulary import LinkState

CONNECTING, UP, DOWN = LinkState.CONNECTING, LinkState.UP, LinkState.DOWN


@dataclass
class LinkHealth:
    """Thread-safe link state with a transition log (time, state, reason)."""

    clock: Callable[[], float] = time.monotonic
    state: str = CONNECTING
    session_ok: bool = False  # an accepted handshake (or heartbeat) since the last failure
    peer_connected: bool = False  # the tile topics have their peer
    history: list[tuple[float, str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _set(self, state: str, reason: str) -> str | None:
        if state == self.state:
            return None
        self.state = state
        self.history.append((self.clock(), state, reason))
        del self.history[:-100]
        return f"link {state}: {reason}"

    def _update(self, reason: str) -> str | None:
        if self.session_ok and self.peer_connected:
            return self._set(UP, reason)
        if self.state == UP:
            return self._set(DOWN, reason)
        return None

    def on_session(self, ok: bool, reason: str) -> str | None:
        """A handshake or heartbeat result; returns a log line when the state changed."""
        with self._lock:
            self.session_ok = ok
            if not ok:
                return self._set(DOWN, reason) if self.state == UP else None
            return self._update(reason)

    def on_peer(self, connected: bool, reason: str = "") -> str | None:
        """The tile link gained or lost its peer."""
        with self._lock:
            self.peer_connected = connected
            return self._update(reason or ("tile link connected" if connected else "tile link lost its peer"))

    def on_failure(self, reason: str) -> str | None:
        """A distributed frame failed: local until the next accepted heartbeat."""
        with self._lock:
            self.session_ok = False
            return self._set(DOWN, reason)

    def distributed_allowed(self) -> bool:
        with self._lock:
            return self.state == UP
