"""Which tiles of a request were really delivered, and when: per-request records for InferenceStats.

A tile handed to the sender thread is not a tile on the link: the request may fail (the server vanished, the
frame is finished locally) while tiles still wait in the sender's queue, and a ROS publisher with nobody
subscribed drops what it is given. So a transport records a tile only after its `send` wrote it out (for
ROS: the bytes went into the TCP connection of at least one subscriber), with the time the write started
and ended; received tiles are recorded on arrival. Tiles of a request that failed are not sent at all
(`cancel`), so a dead request stops using the link at once.

`frame_transfers` turns one request's records (and the peer's report of when our tiles arrived, if any) into
in-flight intervals and byte / tile counts. Up tiles count when the server's report lists them; without a
report they count once their send returned, in flight from the start to the end of their write. ROS-free.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

from intradp_ros.core.tile import FLAGS_WITHOUT_PAYLOAD, Tile
from intradp_ros.core.transport import Transport

KEEP_REQUESTS = 64  # requests whose records are kept when nobody collects them


class SentTile(NamedTuple):
    """One tile this side wrote out: graph node, first row, write start and end (s since the epoch), bytes."""

    node: int
    row: int
    started: float
    finished: float
    nbytes: int


class ReceivedTile(NamedTuple):
    """One tile this side received: graph node, first row, sender's stamp (0: unknown), receipt time, bytes."""

    node: int
    row: int
    stamp: float
    received: float
    nbytes: int


_Row = TypeVar("_Row")


class TileLedger:
    """Thread-safe per-request records of delivered tiles, plus the set of cancelled requests."""

    def __init__(self, keep: int = KEEP_REQUESTS) -> None:
        self._lock = threading.Lock()
        self._keep = keep
        self._sent: OrderedDict[int, list[SentTile]] = OrderedDict()
        self._recv: OrderedDict[int, list[ReceivedTile]] = OrderedDict()
        self._cancelled: OrderedDict[int, None] = OrderedDict()

    def _append(self, book: OrderedDict[int, list[_Row]], rid: int, item: _Row) -> None:
        rows = book.get(rid)
        if rows is None:
            rows = book[rid] = []
            while len(book) > self._keep:
                book.popitem(last=False)
        rows.append(item)

    def sent(self, tile: Tile, started: float, finished: float) -> None:
        """Record a tile whose send completed (control tiles without payload are not transfers)."""
        if tile.flags & FLAGS_WITHOUT_PAYLOAD:
            return
        with self._lock:
            self._append(
                self._sent,
                int(tile.request_id),
                SentTile(int(tile.node_id), int(tile.row_start), started, finished, int(tile.nbytes)),
            )

    def received(self, request_id: int, node: int, row: int, stamp: float, at: float, nbytes: int) -> None:
        """Record a received payload tile."""
        with self._lock:
            self._append(self._recv, int(request_id), ReceivedTile(int(node), int(row), float(stamp), at, int(nbytes)))

    def take(self, request_id: int) -> tuple[list[SentTile], list[ReceivedTile]]:
        """(sent, received) records of one request, removed from the ledger."""
        with self._lock:
            return self._sent.pop(request_id, []), self._recv.pop(request_id, [])

    def cancel(self, request_id: int) -> None:
        """The request failed: its payload tiles not yet sent are dropped instead (see `should_send`)."""
        with self._lock:
            self._cancelled[int(request_id)] = None
            while len(self._cancelled) > self._keep:
                self._cancelled.popitem(last=False)

    def should_send(self, tile: Tile) -> bool:
        """False for payload tiles of a cancelled request (control tiles, e.g. its abort, always go)."""
        if tile.flags & FLAGS_WITHOUT_PAYLOAD:
            return True
        with self._lock:
            return int(tile.request_id) not in self._cancelled


class LedgerTransport(Transport):
    """Any Transport with a ledger: sends of cancelled requests are skipped, completed sends and receipts
    recorded (e.g. around the in-process transport; the ROS transport records the same way itself)."""

    def __init__(self, inner: Transport, ledger: TileLedger | None = None) -> None:
        self.inner = inner
        self.ledger = ledger or TileLedger()
        self.skipped = 0

    def send(self, tile: Tile) -> None:
        if not self.ledger.should_send(tile):
            self.skipped += 1
            return
        started = time.time()
        self.inner.send(tile)
        self.ledger.sent(tile, started, time.time())

    def recv(self, timeout: float | None = None) -> Tile | None:
        tile = self.inner.recv(timeout)
        if tile is not None and not tile.flags & FLAGS_WITHOUT_PAYLOAD:
            # the in-process link stamps its own clock, not the epoch: the sender's time is unknown here
            self.ledger.received(tile.request_id, tile.node_id, tile.row_start, 0.0, time.time(), tile.nbytes)
        return tile

    def close(self) -> None:
        self.inner.close()


@dataclass(frozen=True)
class FrameTransfers:
    """One request's delivered tiles as in-flight intervals and counts (input of frame_timing.breakdown)."""

    up_flight: list[tuple[float, float]]
    down_flight: list[tuple[float, float]]
    bytes_up: int
    bytes_down: int
    tiles_up: int
    tiles_down: int


def frame_transfers(
    sent: Sequence[SentTile],
    received: Sequence[ReceivedTile],
    arrivals: Mapping[tuple[int, int], float] | None = None,
) -> FrameTransfers:
    """Delivered bytes and flight intervals of one request.

    `arrivals`: the peer's report, (node, first row) -> receipt time of our tiles, or None without a report.
    With a report, only the up tiles it lists count (delivered), each in flight from the start of its write
    to its arrival; without one, every tile whose send completed counts, in flight during its write (a lower
    bound: the time the link took it). Down tiles are in flight from the sender's stamp (or their receipt,
    when unknown or later) to their receipt."""
    up: list[tuple[float, float]] = []
    bytes_up = tiles_up = 0
    for s in sent:
        if arrivals is not None:
            at = arrivals.get((s.node, s.row))
            if at is None:
                continue
            up.append((s.started, max(s.started, at)))
        else:
            up.append((s.started, max(s.started, s.finished)))
        bytes_up += s.nbytes
        tiles_up += 1
    down = [(min(r.stamp, r.received) if r.stamp > 0 else r.received, r.received) for r in received]
    return FrameTransfers(up, down, bytes_up, sum(r.nbytes for r in received), tiles_up, len(received))


def report_arrivals(
    node_ids: Sequence[int], row_starts: Sequence[int], stamps: Sequence[float]
) -> dict[tuple[int, int], float]:
    """(node, first row) -> receipt time, from the three parallel arrays of a server report."""
    return {(int(n), int(r)): float(t) for n, r, t in zip(node_ids, row_starts, stamps)}
