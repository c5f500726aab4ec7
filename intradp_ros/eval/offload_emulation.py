"""How the ROS-free offload benchmark emulates what it cannot run: a slow robot CPU and faithful non-model work.

- `SlowRowmap` / `slow_graph`: the robot half's operators each followed by a sleep of (factor - 1) x their own
  time: a CPU quota for one thread, without a cgroup (an in-process thread cannot be put alone in one).
- `ChargedTransport`: every tile through the wire codec, its encode and decode (this thread's CPU time) charged at
  each side's faithful factor (the sender waits for the encode's charge, the receiving end for the decode's), the
  charged seconds accumulated.
- `set_link_rate`: the in-process link's rate for the next frame (the trace's rate at that moment).
- `SlowSwitch` / `ChargedTransport.charging`: turn the emulated costs off for warm-up frames, which only pay one-off
  costs (first-call allocations, plan set-up) and are not counted: they run at this CPU's speed on a free link.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from intradp_ros.core.transport import Transport


class SlowSwitch:
    """Shared by the slowed row maps of one graph: their slow-down `factor` (set again once the robot's real frame
    time is known: `OffloadBench` fits it so the device-only frame takes its target) and `on` (False runs them at
    this CPU's speed: warm-up frames)."""

    def __init__(self, factor: float = 1.0) -> None:
        self.on = True
        self.factor = float(factor)


class SlowRowmap:
    """Wraps a node's row map: each call is followed by a sleep of (factor - 1) x the call's own time, so the
    thread computes `factor` x slower than this CPU (a CPU quota for one thread, without a cgroup)."""

    _CALLS = ("run", "run_inplace", "call_whole")

    def __init__(self, inner: Any, factor: float, switch: SlowSwitch | None = None) -> None:
        self._inner = inner
        self._switch = switch or SlowSwitch(factor)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in self._CALLS or not callable(attr):
            return attr

        def slowed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            out = attr(*args, **kwargs)
            extra = self._switch.factor - 1.0
            if self._switch.on and extra > 0:
                time.sleep((time.perf_counter() - t0) * extra)
            return out

        return slowed


def slow_graph(g: Any, factor: float) -> SlowSwitch:
    """Slow every operator of graph `g` by `factor` in place (the robot's own copy of the graph); the returned
    switch turns the slow-down off and on again."""
    switch = SlowSwitch(factor)
    for node in g.nodes:
        if node.rowmap is not None:
            node.rowmap = SlowRowmap(node.rowmap, factor, switch)
    return switch


RECV_CHARGE = "charged_decode_s"  # tile meta: the receiver's decode charge, waited for by the receiving end


class ChargedTransport(Transport):
    """One end of the link that passes every tile through the wire codec and charges that CPU work its faithful
    cost, by waiting until (factor x the thread's CPU seconds) has passed: the encode at the sender's factor on the
    sending thread, before the link; the decode (run here too, timed) at the receiver's factor on the receiving
    thread when it takes the tile (`recv`), so tiles queue behind each other's decoding there as they would on a
    real receiver. `charged_s` accumulates the charged seconds. `charging` False passes tiles through the codec
    without charging or waiting (warm-up frames)."""

    def __init__(self, inner: Transport, sender_factor: float, receiver_factor: float) -> None:
        self.inner = inner
        self.sender_factor = float(sender_factor)
        self.receiver_factor = float(receiver_factor)
        self.charged_s = 0.0
        self.charging = True
        self._lock = threading.Lock()

    def send(self, tile: Any) -> None:
        from intradp_ros.core.codec import decode_tile, encode_tile

        # CPU time of this thread, not wall time: in one process the halves' threads share the GIL, and a small
        # tile's wall time is mostly waiting for it (up to the 5 ms switch interval), which a robot would not pay
        t0 = time.perf_counter()
        c0 = time.thread_time()
        wire = encode_tile(tile)
        c1 = time.thread_time()
        decoded = decode_tile(wire)
        c2 = time.thread_time()
        encode_charge = self.sender_factor * (c1 - c0)
        decode_charge = self.receiver_factor * (c2 - c1)
        if not self.charging:
            self.inner.send(decoded)
            return
        extra = encode_charge - (time.perf_counter() - t0)
        if extra > 0:
            time.sleep(extra)
        with self._lock:
            self.charged_s += encode_charge + decode_charge
        decoded.meta[RECV_CHARGE] = decode_charge
        self.inner.send(decoded)

    def recv(self, timeout: float | None = None) -> Any:
        tile = self.inner.recv(timeout)
        charge = tile.meta.pop(RECV_CHARGE, 0.0) if tile is not None else 0.0
        if charge > 0 and self.charging:
            time.sleep(charge)
        return tile

    def close(self) -> None:
        self.inner.close()

    def take(self) -> float:
        """Charged seconds since the last take."""
        with self._lock:
            v, self.charged_s = self.charged_s, 0.0
        return v


def set_link_rate(robot_end: Any, rate_Bps: float | None) -> None:
    """Throttle both directions of an in-process pair to `rate_Bps` (the trace's rate for the next frame; None:
    unthrottled)."""
    for link in (robot_end._out, robot_end._in):  # the pair's two _Link objects (core/transport.py)
        with link.lock:
            link.bandwidth = rate_Bps
