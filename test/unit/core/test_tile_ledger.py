"""Tile ledger: stats count only delivered tiles (sent by the transport, or listed by the peer's report), tiles of
a failed request are dropped before the link, and the engine's halves account correctly over the in-process link."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from intradp_ros.core import Plan
from intradp_ros.core.plan import UP
from intradp_ros.core.tile import FLAG_ABORT, Tile
from intradp_ros.core.tile_ledger import (
    LedgerTransport,
    ReceivedTile,
    SentTile,
    TileLedger,
    frame_transfers,
    report_arrivals,
)
from intradp_ros.core.transport import Transport, TransportClosed, inprocess_pair


def tile(rid: int, node: int, row: int, nbytes: int, flags: int = 0) -> Tile:
    return Tile(rid, 1, node, 2, row, row + 1, np.zeros(nbytes, np.uint8), flags=flags)


class GateTransport(Transport):
    """A link whose send() blocks until the test opens the gate (a slow link, without timing)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.sent: list[Tile] = []

    def send(self, t: Tile) -> None:
        self.entered.set()
        if not self.gate.wait(10.0):
            raise TransportClosed("gate never opened")
        self.sent.append(t)

    def recv(self, timeout: float | None = None) -> Tile | None:
        return None

    def close(self) -> None:
        self.gate.set()


def test_frame_transfers_with_a_report_count_only_the_tiles_it_lists():
    sent = [SentTile(3, 0, 10.0, 10.1, 1000), SentTile(3, 8, 10.1, 10.2, 500), SentTile(5, 0, 10.2, 10.3, 7)]
    recv = [ReceivedTile(9, 0, 11.0, 11.5, 4000), ReceivedTile(9, 4, 0.0, 12.0, 100)]
    tx = frame_transfers(sent, recv, report_arrivals([3, 5], [0, 0], [10.6, 10.25]))
    assert (tx.bytes_up, tx.tiles_up) == (1007, 2)  # (3, 8) never reached the server
    assert tx.up_flight == [(10.0, 10.6), (10.2, 10.25)]
    assert (tx.bytes_down, tx.tiles_down) == (4100, 2)
    assert tx.down_flight == [(11.0, 11.5), (12.0, 12.0)]  # unknown sender stamp: no flight time claimed


def test_frame_transfers_without_a_report_count_completed_sends_over_their_write_time():
    sent = [SentTile(3, 0, 10.0, 12.0, 1_000_000), SentTile(3, 8, 12.0, 14.0, 1_000_000)]
    tx = frame_transfers(sent, [], None)
    assert (tx.bytes_up, tx.tiles_up, tx.bytes_down, tx.tiles_down) == (2_000_000, 2, 0, 0)
    assert tx.up_flight == [(10.0, 12.0), (12.0, 14.0)]  # 2 MB in 4 s of writing: a real rate, not 'instant'


def test_ledger_keeps_requests_apart_and_forgets_old_ones():
    led = TileLedger(keep=2)
    for rid in (1, 2, 3):
        led.sent(tile(rid, 1, 0, 10), 0.0, 1.0)
    led.sent(tile(3, 0, 0, 0, flags=FLAG_ABORT), 0.0, 1.0)  # control tiles are no transfers
    led.received(3, 4, 0, 0.5, 1.0, 20)
    assert led.take(1) == ([], [])  # evicted
    sent, recv = led.take(3)
    assert [s.nbytes for s in sent] == [10] and [r.nbytes for r in recv] == [20]
    assert led.take(3) == ([], [])


def test_tiles_of_a_cancelled_request_never_reach_the_link_nor_the_stats():
    inner = GateTransport()
    link = LedgerTransport(inner)
    tiles = [tile(7, 1, r, 1000) for r in range(4)] + [tile(7, 0, 0, 0, flags=FLAG_ABORT), tile(8, 1, 0, 50)]
    sender = threading.Thread(target=lambda: [link.send(t) for t in tiles])  # the engine's sender thread
    sender.start()
    try:
        assert inner.entered.wait(5.0)  # the first tile is on the (blocked) link, three wait behind it
        link.ledger.cancel(7)  # the request failed (server gone): the client cancels it
        inner.gate.set()
        sender.join(5.0)
        assert not sender.is_alive()
    finally:
        inner.gate.set()
    assert [(t.request_id, t.row_start, t.flags) for t in inner.sent] == [(7, 0, 0), (7, 0, FLAG_ABORT), (8, 0, 0)]
    assert link.skipped == 3
    sent, _ = link.ledger.take(7)
    assert frame_transfers(sent, [], None).bytes_up == 1000  # handed over: 4000 B; delivered: 1000 B
    assert frame_transfers(link.ledger.take(8)[0], [], None).bytes_up == 50


def test_split_request_counts_what_the_server_received(graph_and_input):
    from intradp_ros.core.executor import ServerHalf
    from intradp_ros.ros.session_transport import RobotClientHalf

    m, g, x = graph_and_input
    plan = Plan.row_split(g, 0.5)  # halos both ways, outputs partly from the server
    robot_in, server_in = inprocess_pair(None)
    robot_end, server_end = LedgerTransport(robot_in), LedgerTransport(server_in)
    server = ServerHalf(g, server_end, [plan], "cpu", 5.0)
    client = RobotClientHalf(g, robot_end, "cpu", 5.0, "robot1")
    try:
        with torch.no_grad():
            torch.testing.assert_close(client.infer(plan, x), m(x), rtol=1e-4, atol=1e-5)
        rid = client.last_request_id
        deadline = time.monotonic() + 5.0
        while not server_end.ledger._recv.get(rid) and time.monotonic() < deadline:
            time.sleep(0.01)
        _s, srv_recv = server_end.ledger.take(rid)
        sent, recv = robot_end.ledger.take(rid)
        tx = frame_transfers(
            sent,
            recv,
            report_arrivals([r.node for r in srv_recv], [r.row for r in srv_recv], [r.received for r in srv_recv]),
        )
        want_up = sum(t.nbytes for t in plan.transfers() if t.direction == UP)
        want_down = sum(t.nbytes for t in plan.transfers() if t.direction != UP)
        assert tx.bytes_up == want_up == robot_in.bytes_sent > 0
        assert tx.bytes_down == want_down == server_in.bytes_sent > 0
        assert tx.tiles_up == len(sent) and tx.tiles_down == len(recv)
    finally:
        client.close()
        server.close()


def test_failed_request_is_cancelled_so_its_queued_tiles_are_dropped(graph_and_input):
    from intradp_ros.core.executor import ExecutionError
    from intradp_ros.ros.session_transport import RobotClientHalf

    _m, g, x = graph_and_input
    plan = Plan.server_only(g)
    inner = GateTransport()  # the upload never finishes; nobody serves
    link = LedgerTransport(inner)
    client = RobotClientHalf(g, link, "cpu", 30.0, "robot1")
    timer = threading.Timer(0.2, client.abort, args=("server disconnected",))
    timer.start()
    try:
        with pytest.raises(ExecutionError, match="server disconnected"):
            client.infer(plan, x)
        rid = client.last_request_id
        assert not link.ledger.should_send(tile(rid, 0, 0, 10))
        assert link.ledger.should_send(tile(rid, 0, 0, 0, flags=FLAG_ABORT))
        assert link.ledger.should_send(tile(rid + 1, 0, 0, 10))
    finally:
        timer.cancel()
        inner.gate.set()
        client.close()
