"""Health of the four nodes (client, bandwidth monitor, bridge, server) as diagnostic statuses, without ROS.

Each `*_status` function turns a node's plain counters and states into a `Health` (level, one-line message,
key/value pairs) that ros/diagnostics.py copies into a diagnostic_msgs/DiagnosticStatus, so `rostopic echo
/diagnostics` (and rqt_runtime_monitor) show the state, and the evaluation driver and the tests wait on it
instead of searching log text. `DropCounter` counts dropped inputs by cause and says when to log (the first of
each cause at once, then at most once per period with the count), so a camera with an unsupported encoding
cannot flood the log. Levels are diagnostic_msgs' OK, WARN, ERROR, STALE.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlparse

OK, WARN, ERROR, STALE = 0, 1, 2, 3
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR", STALE: "STALE"}


@dataclass
class Health:
    """One diagnostic status: the worst level found, the reasons joined, and every figure as text."""

    level: int = OK
    message: str = ""
    values: dict[str, str] = field(default_factory=dict)
    _reasons: list[str] = field(default_factory=list, repr=False)

    def flag(self, level: int, reason: str) -> None:
        """Raise the level to at least `level` and add the reason to the message."""
        self.level = max(self.level, level)
        self._reasons.append(reason)

    def done(self, ok_message: str) -> Health:
        self.message = "; ".join(self._reasons) if self._reasons else ok_message
        return self


def _age(value: float | None) -> str:
    return "never" if value is None or not math.isfinite(value) else f"{value:.1f}"


# ---------------------------------------------------------------------------------------------- dropped inputs
@dataclass
class DropCounter:
    """Dropped inputs counted by cause; `record` returns True when this drop should be logged."""

    period_s: float = 10.0
    clock: Callable[[], float] = time.monotonic
    counts: dict[str, int] = field(default_factory=dict)
    _logged_at: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, cause: str, detail: str = "") -> bool:
        """Count a drop of `cause`; True for the first drop of each (cause, detail) and then once per period
        (detail: the reason's text, so different malformations are each logged once, a flood of one is not)."""
        key = f"{cause}:{detail[:80]}"
        with self._lock:
            self.counts[cause] = self.counts.get(cause, 0) + 1
            now = self.clock()
            if now - self._logged_at.get(key, -math.inf) >= self.period_s:
                if len(self._logged_at) > 256:  # bounded memory with many distinct reasons
                    self._logged_at.clear()
                self._logged_at[key] = now
                return True
            return False

    def count(self, cause: str | None = None) -> int:
        with self._lock:
            return sum(self.counts.values()) if cause is None else self.counts.get(cause, 0)


# ---------------------------------------------------------------------------------------------- client
@dataclass
class ClientFacts:
    """What the client knows about itself at one moment."""

    robot: str
    mode: str
    link_state: str  # core.link_health: connecting, up, down
    has_plan_book: bool
    handshake_waiting_s: float | None  # seconds the current full handshake has been waiting, None if none
    bucket_mbyte: float | None
    estimate_age_s: float | None  # since the last BandwidthEstimate, None if none yet
    frames_done: int
    deadline_misses: int
    local_fallbacks: int
    dropped: Mapping[str, int]  # cause -> count (unsupported_encoding, malformed, stale, ...)
    random_weights: bool
    estimate_max_age_s: float = 5.0
    dead_threads: tuple[str, ...] = ()  # node threads that stopped while the node runs (a bug: frames stop)
    book_renewing: bool = False  # a renewal handshake is in flight (the held book stays in use meanwhile)
    book_camera: bool = False  # the held book has plans that send the input as the camera's own file


def client_status(f: ClientFacts) -> Health:
    """Link and session state, plan bucket, estimate age, deadline misses, drops and fallbacks."""
    h = Health()
    h.values.update(
        robot=f.robot,
        mode=f.mode,
        session=f.link_state,
        plan_book="received" if f.has_plan_book else "none",
        plan_book_renewing="yes" if f.book_renewing else "no",
        plan_book_camera="yes" if f.book_camera else "no",
        handshake_waiting_s="no" if f.handshake_waiting_s is None else f"{f.handshake_waiting_s:.1f}",
        plan_bucket_mbyte_per_s="none" if f.bucket_mbyte is None else f"{f.bucket_mbyte:g}",
        estimate_age_s=_age(f.estimate_age_s),
        frames_done=str(f.frames_done),
        deadline_misses=str(f.deadline_misses),
        local_fallbacks=str(f.local_fallbacks),
        weights="random (seeded)" if f.random_weights else "checkpoint",
    )
    for cause, n in sorted(f.dropped.items()):
        h.values[f"dropped_{cause}"] = str(n)
    h.values["dropped_total"] = str(sum(f.dropped.values()))
    if f.random_weights:
        h.flag(WARN, "random weights: results are meaningless (set weights:=)")
    if f.mode != "device_only":
        if not f.has_plan_book:
            waiting = f" for {f.handshake_waiting_s:.0f} s" if f.handshake_waiting_s else ""
            h.flag(WARN, f"no plan book yet: handshake pending{waiting} (frames run locally)")
        elif f.link_state != "up":
            h.flag(WARN, f"link {f.link_state}: frames run locally")
        if f.estimate_age_s is None or f.estimate_age_s > f.estimate_max_age_s:
            h.flag(WARN, f"bandwidth estimate {'missing' if f.estimate_age_s is None else 'stale'}")
    unsupported = f.dropped.get("unsupported_encoding", 0)
    if unsupported:
        h.flag(
            ERROR if unsupported == sum(f.dropped.values()) and not f.frames_done else WARN,
            f"{unsupported} frames with an unsupported encoding",
        )
    if f.deadline_misses:
        h.flag(WARN, f"{f.deadline_misses} deadline misses")
    if f.dead_threads:
        h.values["dead_threads"] = ",".join(f.dead_threads)
        h.flag(ERROR, f"thread(s) {', '.join(f.dead_threads)} died: restart the node (see its log)")
    return h.done(f"{f.mode}: link {f.link_state}, {f.frames_done} frames")


# ---------------------------------------------------------------------------------------------- monitor
def monitor_status(
    robot: str,
    estimate_age_s: float | None,
    estimate_mbit: float | None,
    bucket_mbyte: float | None,
    probes_ok: int,
    probe_failures: int,
    last_probe_error: str,
    max_age_s: float,
    probes_enabled: bool = True,
) -> Health:
    """Estimate freshness (age of the newest sample) and probe failures."""
    h = Health()
    h.values.update(
        robot=robot,
        sample_age_s=_age(estimate_age_s),
        estimate_mbit_per_s="none" if estimate_mbit is None else f"{estimate_mbit:.2f}",
        bucket_mbyte_per_s="none" if bucket_mbyte is None else f"{bucket_mbyte:g}",
        probes_ok=str(probes_ok),
        probe_failures=str(probe_failures),
        last_probe_error=last_probe_error or "none",
    )
    if estimate_age_s is None:
        h.flag(WARN, "no bandwidth sample yet")
    elif estimate_age_s > max_age_s:
        h.flag(WARN, f"estimate stale: newest sample {estimate_age_s:.1f} s old")
    if probes_enabled and probe_failures and not probes_ok:
        h.flag(ERROR, f"every probe failed ({probe_failures}): {last_probe_error}")
    elif probe_failures:
        h.flag(OK, f"{probe_failures} probe failures")
    return h.done("estimate fresh")


# ---------------------------------------------------------------------------------------------- bridge
def _host(uri: str) -> str:
    return (urlparse(uri).hostname or "").lower()


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def unreachable_from(node_uri: str, other_master_uri: str) -> bool:
    """True when `node_uri` names a loopback address (127.0.1.1 from a Debian /etc/hosts, localhost) and the
    other side's master is not on loopback: nodes there would dial their own machine."""
    return is_loopback_host(_host(node_uri)) and not is_loopback_host(_host(other_master_uri))


@dataclass
class PeerFacts:
    label: str
    uri: str
    reachable: bool
    restarts: int


def bridge_status(peers: Sequence[PeerFacts], mirrors: int, unreachable_uris: Iterable[str]) -> Health:
    """Each master's reachability, the mirrored registrations, node URIs the other side cannot reach."""
    h = Health()
    bad = sorted(set(unreachable_uris))
    for p in peers:
        h.values[f"{p.label}_master"] = p.uri
        h.values[f"{p.label}_reachable"] = "yes" if p.reachable else "no"
        h.values[f"{p.label}_restarts"] = str(p.restarts)
        if not p.reachable:
            h.flag(ERROR, f"{p.label} master {p.uri} unreachable")
    h.values["mirrored_registrations"] = str(mirrors)
    h.values["unreachable_node_uris"] = ", ".join(bad) or "none"
    if bad:
        h.flag(WARN, f"{len(bad)} node URIs the other side cannot reach (set ROS_IP/ROS_HOSTNAME): {', '.join(bad)}")
    return h.done(f"in sync: {mirrors} mirrors")


# ---------------------------------------------------------------------------------------------- server
@dataclass
class SolveFacts:
    key: str
    robots: tuple[str, ...]
    elapsed_s: float
    expected_s: float
    done_buckets: int
    buckets: int


def server_status(
    device: str,
    requested_device: str,
    robots: Sequence[str],
    sessions: Sequence[str],
    replicas: Sequence[str],
    random_weights: Sequence[str],
    memory: Mapping[str, float],
    solves: Sequence[SolveFacts] = (),
) -> Health:
    """Device in use, robots and their sessions, replicas held, memory, plan-book solves in progress."""
    h = Health()
    h.values.update(
        device=device,
        requested_device=requested_device,
        robots=",".join(robots),
        sessions=",".join(sorted(sessions)) or "none",
        replicas=str(len(replicas)),
        replica_ids=", ".join(replicas),
    )
    for k, v in memory.items():
        h.values[k] = f"{v:.1f}"
    for s in solves:
        h.values[f"solving_{s.key}"] = (
            f"{s.done_buckets}/{s.buckets} buckets, {s.elapsed_s:.0f} s of ~{s.expected_s:.0f} s "
            f"for {','.join(s.robots)}"
        )
    if requested_device.startswith("cuda") and not device.startswith("cuda"):
        h.flag(WARN, f"asked for {requested_device}, running on {device}")
    if random_weights:
        h.flag(WARN, f"random weights for {', '.join(random_weights)}: results are meaningless (set weights:=)")
    if solves:
        h.flag(OK, f"solving {len(solves)} plan books")
    return h.done(f"serving {len(sessions)}/{len(robots)} robots on {device}")
