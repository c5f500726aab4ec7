"""diagnostic_updater glue: publish core.health statuses of a node on /diagnostics once a second.

The status computation lives in intradp_ros.core.health (ROS-free, unit-tested); this module only reads a node's
counters into those functions and copies the result into a DiagnosticStatus. Status names are
"<node name>: <task>" (diagnostic_updater's convention) and the hardware id is the robot name (or "server" /
"bridge"), so `rostopic echo /diagnostics` and rqt_runtime_monitor show them, and the evaluation driver waits
for the client's `plan_book: received` instead of log text. Updates run on a wall-clock thread, not a
rospy.Timer, so they go on under a bag's simulated clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import diagnostic_updater
import rospy

from intradp_ros.core.health import ERROR, ClientFacts, Health, client_status
from intradp_ros.core.session_auth import security_status

StatusFn = Callable[[], Health]


class NodeDiagnostics:
    """One diagnostic_updater.Updater with a task per status function, updated every `period_s`."""

    def __init__(self, hardware_id: str, tasks: dict[str, StatusFn], period_s: float = 1.0) -> None:
        self.updater = diagnostic_updater.Updater()
        self.updater.setHardwareID(hardware_id)
        for name, fn in tasks.items():
            self.updater.add(name, self._task(fn))
        self.period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="intradp-diagnostics", daemon=True)
        self._thread.start()

    @staticmethod
    def _task(fn: StatusFn) -> Callable[[Any], Any]:
        def run(stat: Any) -> Any:
            try:
                h = fn()
            except Exception as e:  # noqa: BLE001 - a broken status must show, not kill the updater
                h = Health(ERROR, f"status failed: {type(e).__name__}: {e}")
            stat.summary(h.level, h.message)
            for k, v in h.values.items():
                stat.add(k, v)
            return stat

        return run

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s) and not rospy.is_shutdown():
            try:
                self.updater.force_update()
            except Exception as e:  # noqa: BLE001 - publishing during shutdown
                rospy.logdebug(f"diagnostics update failed: {e}")

    def force(self) -> None:
        """Publish now (a state change worth seeing at once)."""
        try:
            self.updater.force_update()
        except Exception as e:  # noqa: BLE001
            rospy.logdebug(f"diagnostics update failed: {e}")

    def stop(self) -> None:
        self._stop.set()


def _age(t: float | None) -> float | None:
    return None if t is None else time.monotonic() - t


def client_facts(rt: Any) -> ClientFacts:
    """The facts of a ClientRuntime (intradp_ros.ros.client_node) for core.health.client_status."""
    dropped = dict(rt.drops.counts)
    dropped["stale"] = rt.slot.stale
    dropped["replaced_by_newer"] = rt.slot.replaced
    return ClientFacts(
        robot=rt.robot,
        mode=rt.mode,
        link_state=rt.health.state,
        has_plan_book=rt.book is not None,
        handshake_waiting_s=_age(rt.handshake_since),
        bucket_mbyte=rt.bucket,
        estimate_age_s=_age(rt.estimate_at),
        frames_done=rt.frames_done,
        deadline_misses=rt.deadline_misses,
        local_fallbacks=rt.local_fallbacks,
        dropped=dropped,
        random_weights=not rt.cfg.weights,
        dead_threads=tuple(getattr(rt, "dead_threads", ())),
        book_renewing=bool(getattr(getattr(rt, "session", None), "renewing", False)),
        book_camera=prices_camera(rt.book),
    )


def prices_camera(book: Any) -> bool:
    """True when `book` holds a plan that sends the input as the camera's own file (CODEC_CAMERA)."""
    from intradp_ros.core.tile import CODEC_CAMERA

    return any(CODEC_CAMERA in p.codecs.values() for p in getattr(book, "plans", ()))


def client_security(rt: Any) -> Health:
    """The link security of a ClientRuntime: authenticated or not, tiles dropped for a bad MAC."""
    counts = {f"forged_tiles_{cause}": n for cause, n in dict(rt.transport.auth_drops.counts).items()}
    return security_status(rt.keys.enabled, counts)


def client_diagnostics(rt: Any) -> NodeDiagnostics:
    """Diagnostics of a ClientRuntime: a 'session' and a 'security' status."""
    return NodeDiagnostics(
        rt.robot, {"session": lambda: client_status(client_facts(rt)), "security": lambda: client_security(rt)}
    )


RANDOM_WEIGHTS_BANNER = (
    "*** %s: RANDOM WEIGHTS (no checkpoint given): results are meaningless, KAPAO finds no poses. "
    "Set weights:=/path/to/checkpoint (docs/models.md) on the client AND the server. ***"
)
UNAUTHENTICATED_BANNER = (
    "*** %s: UNAUTHENTICATED LINK (no key_file): any node that reaches the masters can forge tiles (wrong "
    "results) or take over the session. Set key_file:= on the client AND the server (docs/security.md). ***"
)
