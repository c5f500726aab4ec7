"""Transport: how tiles cross between the robot and the server.

The executors only see this interface. `inprocess_pair()` connects two ends inside one process (tests,
run_pair, IntraDP(server="inproc")), optionally throttled to a bandwidth so that overlap of transfer and
computation can be measured; the ROS adapter (intradp_ros.ros.transport) maps tiles onto TensorTile topics.
"""

from __future__ import annotations

import queue
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import replace

import numpy as np

from intradp_ros.core.tile import Tile


class TransportClosed(RuntimeError):
    """The transport was closed (by this side or the peer)."""


class Transport(ABC):
    """One end of a robot<->server link carrying Tiles."""

    @abstractmethod
    def send(self, tile: Tile) -> None:
        """Hand one tile to the link; may block while the link is busy (call it from a sender thread)."""

    @abstractmethod
    def recv(self, timeout: float | None = None) -> Tile | None:
        """Next tile, or None after `timeout` seconds; TransportClosed once closed."""

    @abstractmethod
    def close(self) -> None:
        """Stop: pending recv() calls on both ends raise TransportClosed."""


_CLOSED = object()


class _Link:
    """One direction of an in-process link: a queue plus an optional serialisation delay."""

    def __init__(self, bandwidth_bytes_per_s: float | None, latency_s: float) -> None:
        self.q: queue.Queue[object] = queue.Queue()
        self.bandwidth = bandwidth_bytes_per_s
        self.latency = latency_s
        self.busy_until = 0.0
        self.lock = threading.Lock()
        self.bytes = 0
        self.tiles = 0


class InProcessTransport(Transport):
    """In-process end. Throttling models a link of `bandwidth` bytes/s: send() returns when the tile
    has been 'serialised' onto the wire, then the tile is visible to the peer after `latency`."""

    def __init__(self, out_link: _Link, in_link: _Link, copy: bool = True, wire: bool = False) -> None:
        self._out, self._in = out_link, in_link
        self._copy = copy
        self._wire = wire
        self._closed = False

    def send(self, tile: Tile) -> None:
        if self._closed:
            raise TransportClosed("transport closed")
        if self._wire:  # through the real wire format (bytes), as the ROS adapter does
            from intradp_ros.core.codec import decode_tile, encode_tile

            tile = decode_tile(encode_tile(tile))
            data = tile.data
        else:
            data = np.array(tile.data, copy=True) if self._copy else tile.data  # the wire never aliases memory
        link = self._out
        if link.bandwidth:
            with link.lock:
                start = max(time.perf_counter(), link.busy_until)
                link.busy_until = start + tile.nbytes / link.bandwidth
                wait = link.busy_until - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        link.bytes += tile.nbytes
        link.tiles += 1
        meta = dict(tile.meta)
        meta["sent_at"] = time.perf_counter()
        out = replace(tile, data=data, meta=meta)
        if link.latency > 0:
            threading.Timer(link.latency, link.q.put, args=(out,)).start()
        else:
            link.q.put(out)

    def recv(self, timeout: float | None = None) -> Tile | None:
        if self._closed:
            raise TransportClosed("transport closed")
        try:
            item = self._in.q.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _CLOSED:
            self._closed = True
            self._in.q.put(_CLOSED)
            raise TransportClosed("transport closed")
        return item  # type: ignore[return-value]

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._out.q.put(_CLOSED)
            self._in.q.put(_CLOSED)

    @property
    def bytes_sent(self) -> int:
        return self._out.bytes

    @property
    def tiles_sent(self) -> int:
        return self._out.tiles


def inprocess_pair(
    bandwidth_bytes_per_s: float | None = None, latency_s: float = 0.0, copy: bool = True, wire: bool = False
) -> tuple[InProcessTransport, InProcessTransport]:
    """(robot end, server end) of an in-process link, throttled per direction when a bandwidth is given;
    `wire=True` passes every tile through the wire codec (bytes and back)."""
    up = _Link(bandwidth_bytes_per_s, latency_s)
    down = _Link(bandwidth_bytes_per_s, latency_s)
    return InProcessTransport(up, down, copy, wire), InProcessTransport(down, up, copy, wire)
