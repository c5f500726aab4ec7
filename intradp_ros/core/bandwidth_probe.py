"""Active probe planning for the bandwidth monitor, ROS-free: the probe train, its goodput, per-call timeouts,
the probe duty-cycle budget, link-activity tracking and passive samples from link-limited tile transfers.

A probe is a timed train: `train_calls` back-to-back calls of `chunk` bytes each on one persistent connection,
each call timed on its own. Two things make the first part of any transfer after an idle gap lie:

- Token buckets. A shaper lets its bucket's worth of bytes through at line rate after an idle period (the
  testbed's tbf bucket is a few ms of traffic, Wi-Fi aggregates similarly), and TCP restarts slow start.
- So the leading calls are excluded: always the first, then every further leading call that is still faster
  than `drain_ratio` x the median rate of all calls but the first (the bucket had not drained yet; a bucket
  holding more than half of the train is not detected, so calls are sized far above the testbed's bucket).
  The sample is the bytes of the remaining calls over their summed time. No lead-in sized for one particular
  bucket is needed, and a bucket larger than a call shows up as more excluded calls instead of a wrong figure.
- A call slowed by CPU contention on the robot measures the scheduler, not the link: the probe thread's
  run-queue wait during each call (Linux schedstat, `thread_run_queue_wait_s`) is recorded, and a call that
  waited for a CPU longer than `max_cpu_wait_share` of its time is not timed by its wall clock. Its kernel
  time is used instead where there is one: for a download, the socket's TCP_INFO says how long ago the request
  left and the last reply byte arrived (`tcp_network_time_s`), stamped by the kernel whatever the thread's
  scheduling; such a call is "rescued". A starved call without one is left out (a train with no call left gives
  none). Without the rescue a robot whose CPU is saturated (device-only inference on a CPU quota) starved every
  probe, no sample came, and the stale estimate pinned the device-only plan that kept the CPU saturated; while
  calls starve, probes therefore go down (`MonitorCore.next_probe`).
- A call slowed by a starved server measures the server's scheduler too: the probe server reports, with every
  reply, how long its own process could not run before it handled the request (`server_stall_s`, its lateness
  meter). A call whose server stall exceeds `max_cpu_wait_share` of its time is left out like a starved robot
  call (the kernel's time includes the server's stall, so there is no rescue): one slow probe on a busy server
  is no longer blamed on the link.
- The other direction refills while one is measured. Up- and downlink are measured by separate probes (the
  reply of an uplink probe is empty and vice versa); with `direction="both"` probes alternate.

The chunk follows the current estimate (`target_s` of transfer at the estimated rate, clamped to
[min_bytes, max_bytes]), so a probe costs about the same link time at any bandwidth. Each call has a timeout of
`timeout_factor` x its expected time, within [min_timeout_s, call_timeout_s]: a call that runs out of it still
tells something (the link is slower than chunk / timeout), which `timeout_sample` turns into a sample.

Duty cycle: probes only start when no tile traffic was seen for `idle_gap_s` and the next frame is not due
before the probe would end, and the link time spent probing over the last `duty_window_s` stays under
`busy_duty` (5 %) while inference runs, `idle_duty` when it does not (the link is free then).
"""

from __future__ import annotations

import math
import socket
import statistics
import struct
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from intradp_ros.core.bandwidth import SOURCE_PASSIVE, SOURCE_PROBE, BandwidthSample, InvalidSample

__all__ = [
    "DIRECTIONS",
    "ProbeConfig",
    "ProbeCall",
    "TrainResult",
    "plan_probe",
    "probe_bytes",
    "call_timeout",
    "train_sample",
    "thread_run_queue_wait_s",
    "tcp_network_time_s",
    "socket_network_time_s",
    "timeout_sample",
    "DutyBudget",
    "LinkActivity",
    "passive_sample",
]

DIRECTIONS = ("up", "down", "both")
KIB = 1024


@dataclass(frozen=True)
class ProbeConfig:
    """Probe train sizes, timeouts and duty-cycle limits (see the module docstring)."""

    train_calls: int = 3  # calls per probe; the first (and any still inside the bucket) is excluded
    initial_bytes: int = 64 * KIB  # chunk while there is no estimate yet
    min_bytes: int = 32 * KIB  # at least ~55 ms per call at 4.65 Mbit/s: timer and scheduling noise stay small
    max_bytes: int = 1024 * KIB
    target_s: float = 0.025  # each call lasts about this long at the estimated rate
    drain_ratio: float = 1.3  # a leading call faster than this x the median of the later ones is bucket
    max_cpu_wait_share: float = 0.2  # a call whose thread waited for a CPU longer than this share is dropped
    direction: str = "both"  # up (robot->server), down, or both (alternating)
    busy_duty: float = 0.05  # share of link time probes may take while inference runs
    idle_duty: float = 0.4  # ... while no inference ran for active_window_s
    duty_window_s: float = 10.0  # the duty cycle is measured over this sliding window
    idle_gap_s: float = 0.1  # no tile traffic for this long before a probe
    active_window_s: float = 2.0  # inference counts as running this long after its last stats message
    guard_s: float = 0.02  # a probe must end this long before the next frame is expected
    timeout_factor: float = 8.0  # a call may take this many times its expected time ...
    min_timeout_s: float = 0.5  # ... but at least this long (scheduling noise on a loaded robot) ...
    call_timeout_s: float = 3.0  # ... and at most this long (also the timeout before the first estimate) ...
    max_call_timeout_s: float = 30.0  # ... unless 2x the call's time at the estimate is longer (a very slow link)

    def __post_init__(self) -> None:
        for name in ("initial_bytes", "min_bytes", "max_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        if self.min_bytes < 1 or self.max_bytes < self.min_bytes:
            raise ValueError(f"need 1 <= min_bytes <= max_bytes, got {self.min_bytes}, {self.max_bytes}")
        if not isinstance(self.train_calls, int) or isinstance(self.train_calls, bool) or self.train_calls < 2:
            raise ValueError(f"train_calls must be an int >= 2 (the first call is excluded), got {self.train_calls!r}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")
        for name in ("busy_duty", "idle_duty", "max_cpu_wait_share"):
            value = getattr(self, name)
            if not (0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        for name in ("target_s", "duty_window_s", "call_timeout_s", "min_timeout_s"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be > 0 and finite, got {value!r}")
        if self.min_timeout_s > self.call_timeout_s:
            raise ValueError(f"min_timeout_s {self.min_timeout_s!r} exceeds call_timeout_s {self.call_timeout_s!r}")
        if not (self.max_call_timeout_s >= self.call_timeout_s and math.isfinite(self.max_call_timeout_s)):
            raise ValueError(
                f"max_call_timeout_s {self.max_call_timeout_s!r} must be finite and >= call_timeout_s "
                f"{self.call_timeout_s!r}"
            )
        for name in ("drain_ratio", "timeout_factor"):
            value = getattr(self, name)
            if not (value > 1.0 and math.isfinite(value)):
                raise ValueError(f"{name} must be > 1 and finite, got {value!r}")
        for name in ("idle_gap_s", "active_window_s", "guard_s"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be >= 0 and finite, got {value!r}")


@dataclass(frozen=True)
class ProbeCall:
    """One service call of a probe train: upload `payload_bytes`, ask for `reply_bytes`."""

    payload_bytes: int
    reply_bytes: int
    direction: str  # "up" or "down": which way the bytes of this call go

    @property
    def measured_bytes(self) -> int:
        return self.payload_bytes if self.direction == "up" else self.reply_bytes


@dataclass(frozen=True)
class TrainResult:
    """What one probe train gave: the sample (None when no call was usable) and how many calls were excluded."""

    sample: BandwidthSample | None
    excluded: int  # leading calls inside the bucket
    call_rates: tuple[float, ...]  # bytes/s of every call, in order (kernel-timed where rescued)
    starved: int = 0  # calls left out because the robot's probe thread waited for a CPU (and no kernel time)
    rescued: int = 0  # calls whose thread waited for a CPU, timed by the kernel instead


def probe_bytes(estimate_bytes_per_s: float | None, config: ProbeConfig) -> int:
    """Chunk size for the next probe: `target_s` of transfer at the estimate, clamped to [min, max]."""
    if estimate_bytes_per_s is None or not math.isfinite(estimate_bytes_per_s) or estimate_bytes_per_s <= 0:
        size = config.initial_bytes
    else:
        size = int(estimate_bytes_per_s * config.target_s)
    return int(min(max(size, config.min_bytes), config.max_bytes))


def plan_probe(direction: str, chunk_bytes: int, config: ProbeConfig) -> list[ProbeCall]:
    """The `train_calls` equal calls of one probe in `direction` ("up" or "down")."""
    if direction not in ("up", "down"):
        raise ValueError(f"a probe goes 'up' or 'down', got {direction!r}")
    if chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be >= 1, got {chunk_bytes!r}")
    call = ProbeCall(chunk_bytes, 0, "up") if direction == "up" else ProbeCall(0, chunk_bytes, "down")
    return [call] * config.train_calls


def call_timeout(call: ProbeCall, estimate_bytes_per_s: float | None, config: ProbeConfig) -> float:
    """Seconds one call may take: `timeout_factor` x its time at the estimate, within [min, call_timeout_s];
    where 2x its time at the estimate exceeds call_timeout_s, that (up to max_call_timeout_s). Without the
    stretch a link slower than min_bytes / call_timeout_s (87 kbit/s; time dilation makes such rates) timed
    every call out and the estimate stuck at that upper bound."""
    if estimate_bytes_per_s is None or not math.isfinite(estimate_bytes_per_s) or estimate_bytes_per_s <= 0:
        return config.call_timeout_s
    expected = call.measured_bytes / estimate_bytes_per_s
    cap = min(max(config.call_timeout_s, 2.0 * expected), config.max_call_timeout_s)
    return min(max(config.timeout_factor * expected, config.min_timeout_s), cap)


def thread_run_queue_wait_s() -> float | None:
    """Seconds the calling thread has spent waiting for a CPU (Linux /proc/thread-self/schedstat), or None."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


# struct tcp_info (linux/tcp.h): __u32 tcpi_last_data_sent at byte 44, tcpi_last_data_recv at byte 52 (ms ago).
_TCPI_LAST_DATA_SENT = 44
_TCPI_LAST_DATA_RECV = 52
_TCP_INFO_LEN = 104


def tcp_network_time_s(info: bytes) -> float | None:
    """From a socket's TCP_INFO read right after a download call: seconds from the request leaving to the last
    reply byte arriving (both kernel stamps, millisecond resolution at best, a jiffy at worst), or None."""
    if len(info) < _TCPI_LAST_DATA_RECV + 4:
        return None
    sent_ago = int(struct.unpack_from("=I", info, _TCPI_LAST_DATA_SENT)[0])
    recv_ago = int(struct.unpack_from("=I", info, _TCPI_LAST_DATA_RECV)[0])
    if recv_ago > sent_ago:  # the reply's last byte arrived before the request left: not one call
        return None
    return (sent_ago - recv_ago) / 1e3


def socket_network_time_s(sock: socket.socket | None) -> float | None:
    """`tcp_network_time_s` of a connected TCP socket (None where TCP_INFO is missing: not Linux, closed)."""
    opt = getattr(socket, "TCP_INFO", None)
    if sock is None or opt is None:
        return None
    try:
        return tcp_network_time_s(sock.getsockopt(socket.IPPROTO_TCP, opt, _TCP_INFO_LEN))
    except (OSError, ValueError, struct.error):
        return None


def train_sample(
    calls: Sequence[ProbeCall],
    seconds: Sequence[float],
    received: Sequence[int],
    stamp: float,
    drain_ratio: float,
    cpu_wait_s: Sequence[float | None] | None = None,
    max_cpu_wait_share: float = 0.2,
    network_s: Sequence[float | None] | None = None,
    server_stall_s: Sequence[float | None] | None = None,
) -> TrainResult:
    """The goodput sample of a completed train (see the module docstring for which calls are excluded).

    `seconds[i]` is the wall time of call i (the whole call, so overhead counts against it), `received[i]` what
    came back (reply length for "down", the server's count for "up"); a short transfer is refused (InvalidSample)
    rather than turned into a wrong figure. `cpu_wait_s[i]`: the probe thread's run-queue wait during call i;
    `network_s[i]`: the kernel's time of call i (`tcp_network_time_s`), used for a call that waited too long
    for a CPU (None: unknown); `server_stall_s[i]`: the probe server's own stall before it handled call i
    (None: unknown): a call stalled beyond `max_cpu_wait_share` of its time is left out.
    """
    n = len(calls)
    if not calls or n != len(seconds) or n != len(received):
        raise ValueError(f"need one time and one count per call: {n}, {len(seconds)}, {len(received)}")
    for call, got in zip(calls, received, strict=True):
        if got != call.measured_bytes:
            raise InvalidSample(f"probe call moved {got} B, expected {call.measured_bytes} B")
    for t in seconds:
        if not (t > 0 and math.isfinite(t)):
            raise InvalidSample(f"probe call time must be > 0 and finite, got {t!r}")
    waits = list(cpu_wait_s) if cpu_wait_s is not None else [None] * n
    kernel = list(network_s) if network_s is not None else [None] * n
    stalls = list(server_stall_s) if server_stall_s is not None else [None] * n
    if len(waits) != n or len(kernel) != n or len(stalls) != n:
        raise ValueError(
            f"need one cpu wait, one kernel time and one server stall per call: {n}, {len(waits)}, {len(kernel)}, "
            f"{len(stalls)}"
        )
    timed = list(seconds)
    usable = [True] * n
    rescued_calls = set()
    for i in range(n):
        stall = stalls[i]
        if stall is not None and math.isfinite(stall) and stall > max_cpu_wait_share * seconds[i]:
            usable[i] = False  # the server could not run: its stall is inside every time of this call
            continue
        wait = waits[i]
        if wait is None or wait <= max_cpu_wait_share * seconds[i]:
            continue
        k = kernel[i]
        if k is not None and math.isfinite(k) and k > 0:
            timed[i] = min(k, seconds[i])  # the kernel's stamps are inside the call
            rescued_calls.add(i)
        else:
            usable[i] = False
    rates = tuple(c.measured_bytes / t for c, t in zip(calls, timed, strict=True))
    first = 1  # the first call always carries the bucket and TCP's restart after idle
    reference = statistics.median(rates[1:])  # the drained rate, robust to one slow call anywhere in the train
    while first < n - 1 and rates[first] > drain_ratio * reference:
        first += 1
    kept = [i for i in range(first, n) if usable[i]]
    starved = n - first - len(kept)
    rescued = len([i for i in kept if i in rescued_calls])
    if not kept:
        return TrainResult(None, first, rates, starved, rescued)
    nbytes = sum(calls[i].measured_bytes for i in kept)
    total = sum(timed[i] for i in kept)
    sample = BandwidthSample(float(nbytes), float(total), SOURCE_PROBE, float(stamp)).validate()
    return TrainResult(sample, first, rates, starved, rescued)


def timeout_sample(call: ProbeCall, timeout_s: float, stamp: float) -> BandwidthSample:
    """A call that did not finish within `timeout_s`: the link moves less than its bytes in that time, so
    bytes / timeout is an upper bound of the rate; as a sample it pulls a stale high estimate down at once (the
    next, smaller train then measures the new level)."""
    return BandwidthSample(float(call.measured_bytes), float(timeout_s), SOURCE_PROBE, float(stamp)).validate()


class DutyBudget:
    """Link time spent on probes over a sliding window, so probes stay under a duty cycle."""

    def __init__(self, window_s: float) -> None:
        if not (window_s > 0 and math.isfinite(window_s)):
            raise ValueError(f"window_s must be > 0 and finite, got {window_s!r}")
        self.window_s = window_s
        self._spans: deque[tuple[float, float]] = deque()  # (start, end)

    def record(self, start: float, end: float) -> None:
        """Count a probe that occupied the link from `start` to `end`."""
        if end < start:
            raise ValueError(f"probe ends ({end}) before it starts ({start})")
        self._spans.append((start, end))

    def used(self, now: float) -> float:
        """Probe seconds inside [now - window_s, now]."""
        horizon = now - self.window_s
        while self._spans and self._spans[0][1] <= horizon:
            self._spans.popleft()
        return sum(end - max(start, horizon) for start, end in self._spans)

    def allows(self, now: float, duration_s: float, duty: float) -> bool:
        """Whether a probe of `duration_s` may start now: the window's probe share stays <= duty, and probes are
        paced (the last one, of length d, is followed by d * (1/duty - 1) of quiet) so they do not come in bursts.
        A probe longer than the window's share may start once the window holds no probe: the pacing after it
        keeps the duty (without this, on a link so slow that the smallest train takes longer than duty x window,
        no probe ever ran and the estimate went stale for good)."""
        if duty <= 0:
            return False
        if self._spans:
            start, end = self._spans[-1]
            if now < end + (end - start) * (1.0 / duty - 1.0):
                return False
        used = self.used(now)
        if used + duration_s <= duty * self.window_s:
            return True
        return used == 0.0 and duration_s > duty * self.window_s


class LinkActivity:
    """When tile traffic was last seen and when the next frame is expected, from per-frame stats messages."""

    def __init__(self, history: int = 8) -> None:
        self._arrivals: deque[float] = deque(maxlen=history)
        self._latencies: deque[float] = deque(maxlen=history)
        self.last_traffic: float | None = None

    def on_frame(self, now: float, latency_s: float) -> None:
        """A frame's stats arrived at `now` (its tiles moved during the `latency_s` before)."""
        self._arrivals.append(now)
        if math.isfinite(latency_s) and latency_s >= 0:
            self._latencies.append(latency_s)
        self.last_traffic = now

    def on_traffic(self, now: float) -> None:
        """Any other sign of tile traffic (e.g. a passive-sample message)."""
        self.last_traffic = now if self.last_traffic is None else max(self.last_traffic, now)

    def inference_running(self, now: float, window_s: float) -> bool:
        return bool(self._arrivals) and now - self._arrivals[-1] <= window_s

    def quiet_for(self, now: float) -> float:
        """Seconds since the last traffic (inf when none was ever seen)."""
        return math.inf if self.last_traffic is None else now - self.last_traffic

    def next_frame_start(self) -> float | None:
        """When the next frame's traffic is expected: last frame end + median period - median latency."""
        if len(self._arrivals) < 2:
            return None
        arrivals = list(self._arrivals)
        period = statistics.median(b - a for a, b in zip(arrivals, arrivals[1:]))
        latency = statistics.median(self._latencies) if self._latencies else 0.0
        return arrivals[-1] + max(period - latency, 0.0)

    def probe_fits(self, now: float, duration_s: float, config: ProbeConfig) -> bool:
        """True when the link has been quiet for idle_gap_s and, while inference runs, the probe ends before the
        next frame is due (minus guard_s)."""
        if self.quiet_for(now) < config.idle_gap_s:
            return False
        if not self.inference_running(now, config.active_window_s):
            return True
        nxt = self.next_frame_start()
        if nxt is None:
            return True  # one frame seen, no period yet: the duty budget alone limits probes
        return now + duration_s <= nxt - config.guard_s


def passive_sample(
    bytes_up: int,
    bytes_down: int,
    transmit_s: float,
    stamp: float,
    min_bytes: int,
    transmit_only_s: float | None = None,
    min_link_share: float = 0.5,
) -> BandwidthSample | None:
    """A goodput sample from one frame's tile transfers, or None when they do not tell the link's rate.

    InferenceStats gives bytes each way, `transmit_s` (the wall time during which at least one tile was in
    flight) and `robot_transmit_only_s` (the robot idle while its own tiles were still being sent). Only
    link-limited transfers are used: frames whose robot waited on its own uploads for at least `min_link_share`
    of `transmit_s` (when `transmit_only_s` is given); otherwise the tiles trickled out as they were computed and
    bytes / time is the compute's pace, not the link's. The larger direction over that time is used: when both
    directions overlapped it is a lower bound of the per-direction rate, never an overestimate from adding two
    directions that ran in parallel. Frames with fewer than `min_bytes` in that direction are skipped (their
    time is latency, the shaper's bucket and per-message overhead, not bandwidth). Raises InvalidSample for
    negative/NaN figures.
    """
    figures = [("bytes_up", bytes_up), ("bytes_down", bytes_down), ("transmit_s", transmit_s)]
    if transmit_only_s is not None:
        figures.append(("transmit_only_s", transmit_only_s))
    for name, value in figures:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise InvalidSample(f"{name} must be a finite number >= 0, got {value!r}")
    nbytes = max(bytes_up, bytes_down)
    if nbytes < max(min_bytes, 1):
        return None
    if transmit_s <= 0:
        raise InvalidSample(f"{nbytes} B moved in transmit_s={transmit_s!r}")
    if transmit_only_s is not None and transmit_only_s < min_link_share * transmit_s:
        return None
    return BandwidthSample(float(nbytes), float(transmit_s), SOURCE_PASSIVE, float(stamp)).validate()
