"""Per-subscriber writers: a subscriber that never reads is dropped (once, logged) and never holds the publisher
or the other subscribers; repeated offenders are refused for a while. Real sockets (socketpair), no master."""

from __future__ import annotations

import socket
import threading
import time

import pytest

pytest.importorskip("rospy")

from rospy.exceptions import TransportTerminated

from intradp_ros.ros.connection_writer import Backoff, WriterSet

MSG = 256 << 10


class FakeConnection:
    """What a rospy TCPROSTransport offers a publisher: a socket, an endpoint id, done, close, stats."""

    def __init__(self, sock: socket.socket, endpoint: str) -> None:
        self.socket, self.endpoint_id = sock, endpoint
        self.done = False
        self.stat_bytes = self.stat_num_msg = 0

    def close(self) -> None:
        if not self.done:
            self.done = True
            self.socket.close()


class FakeImpl:
    """rospy's _PublisherImpl as far as the writers use it: add/remove connection and a synchronous publish."""

    def __init__(self) -> None:
        self.connections: list = []

    def add_connection(self, c) -> bool:
        self.connections.append(c)
        return True

    def remove_connection(self, c) -> None:
        if c in self.connections:
            self.connections.remove(c)

    def publish(self, data: bytes) -> None:
        for c in list(self.connections):
            try:
                c.write_data(data)
            except TransportTerminated:
                c.close()
                self.remove_connection(c)


class FakePublisher:
    def __init__(self) -> None:
        self.impl = FakeImpl()


def reader(sock: socket.socket, got: list[int], stop: threading.Event) -> threading.Thread:
    def run() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                chunk = sock.recv(1 << 20)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            got[0] += len(chunk)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def wait_for(predicate, timeout: float = 5.0) -> None:
    """The drop's log line and removal happen on the writer's own thread, just after it stops: wait (bounded)."""
    end = time.monotonic() + timeout
    while not predicate() and time.monotonic() < end:
        time.sleep(0.01)


@pytest.fixture
def sockets():
    made: list[socket.socket] = []

    def pair() -> tuple[socket.socket, socket.socket]:
        a, b = socket.socketpair()
        made.extend((a, b))
        return a, b

    yield pair
    for s in made:
        s.close()


def test_a_never_reading_subscriber_is_dropped_and_the_reader_gets_everything(sockets) -> None:
    logs: list[str] = []
    pub = FakePublisher()
    # a stall limit far beyond the test: only the bounded queue can drop the non-reader, which it reaches only if
    # the publisher kept going while that subscriber was stuck
    writers = WriterSet("/t", max_queue_bytes=8 * MSG, stall_s=60.0, log=logs.append)
    writers.install(pub)
    good_w, good_r = sockets()
    bad_w, _bad_r = sockets()  # never read
    pub.impl.add_connection(FakeConnection(good_w, "/robot"))
    pub.impl.add_connection(FakeConnection(bad_w, "/attacker"))
    got, stop = [0], threading.Event()
    t = reader(good_r, got, stop)
    n = 200  # 50 MB: far beyond what the never-read socket buffers hold
    try:
        for _ in range(n):
            before = writers.snapshot()
            pub.impl.publish(b"x" * MSG)
            assert writers.wait_written(before) >= 1
        end = time.monotonic() + 10
        while got[0] < n * MSG and time.monotonic() < end:
            time.sleep(0.01)
    finally:
        stop.set()
        t.join(2)
    wait_for(lambda: writers.dropped == 1)
    assert got[0] == n * MSG, "the reading subscriber must get every message"
    assert writers.dropped == 1
    drops = [line for line in logs if "dropped subscriber" in line]
    assert len(drops) == 1 and "/attacker" in drops[0] and "send queue would exceed" in drops[0], logs
    assert [c.endpoint for c in pub.impl.connections] == ["/robot"]  # removed from the topic
    assert writers.backoff.drops("/attacker") == 1  # it fell behind while another subscriber kept up


def test_a_lone_stalled_subscriber_is_dropped_by_the_progress_watchdog(sockets) -> None:
    logs: list[str] = []
    pub = FakePublisher()
    writers = WriterSet("/t", max_queue_bytes=1 << 30, stall_s=0.3, log=logs.append)
    writers.install(pub)
    w, _r = sockets()
    pub.impl.add_connection(FakeConnection(w, "/hung"))
    wrote = 1
    for _ in range(400):  # bounded: the socket buffers fill within a few MB
        before = writers.snapshot()
        pub.impl.publish(b"y" * MSG)
        wrote = writers.wait_written(before)
        if wrote == 0:
            break
    assert wrote == 0
    wait_for(lambda: not pub.impl.connections and logs)
    assert any("no byte accepted" in line and "/hung" in line for line in logs), logs
    assert pub.impl.connections == []
    assert writers.backoff.drops("/hung") == 0  # alone: the network or a hung peer, free to reconnect


def test_queue_overflow_drops_the_connection_not_old_messages(sockets) -> None:
    logs: list[str] = []
    pub = FakePublisher()
    writers = WriterSet("/t", max_queue_bytes=3 * MSG, stall_s=30.0, log=logs.append)
    writers.install(pub)
    w, _r = sockets()
    pub.impl.add_connection(FakeConnection(w, "/slow"))
    for _ in range(400):
        pub.impl.publish(b"z" * MSG)  # without waiting: the queue grows
        if not pub.impl.connections:
            break
    wait_for(lambda: not pub.impl.connections and logs)
    assert pub.impl.connections == []
    assert any("send queue would exceed" in line for line in logs), logs


def test_repeated_offenders_are_refused_for_a_growing_pause(sockets) -> None:
    now = [100.0]
    backoff = Backoff(base_s=1.0, max_s=8.0, clock=lambda: now[0])
    assert backoff.refused_for("/a") == 0.0
    backoff.dropped("/a")
    assert backoff.refused_for("/a") == 0.0  # the first drop costs nothing (a hung peer that came back)
    backoff.dropped("/a")
    assert backoff.refused_for("/a") == pytest.approx(1.0)
    backoff.dropped("/a")
    assert backoff.refused_for("/a") == pytest.approx(2.0)
    now[0] += 2.5
    assert backoff.refused_for("/a") == 0.0
    logs: list[str] = []
    writers = WriterSet("/t", 1 << 20, 1.0, backoff=backoff, log=logs.append)
    backoff.dropped("/a")
    w, _r = sockets()
    conn = FakeConnection(w, "/a")
    assert writers.wrap(conn) is None and conn.done and writers.refused == 1
    assert len(logs) == 1 and "refused subscriber /a" in logs[0]
    w2, _r2 = sockets()
    assert writers.wrap(FakeConnection(w2, "/b")) is not None  # others are not affected
    for x in writers.writers:
        x.close()


def test_installing_twice_on_one_topic_is_refused() -> None:
    pub = FakePublisher()
    WriterSet("/t", 1 << 20, 1.0).install(pub)
    with pytest.raises(RuntimeError, match="already installed"):
        WriterSet("/t", 1 << 20, 1.0).install(pub)


def test_subscribers_beyond_the_limit_are_refused(sockets) -> None:
    logs: list[str] = []
    writers = WriterSet("/t", 1 << 20, 1.0, log=logs.append, max_connections=2)
    made = [FakeConnection(sockets()[0], f"/n{i}") for i in range(3)]
    got = [writers.wrap(c) for c in made]
    assert got[0] is not None and got[1] is not None and got[2] is None and made[2].done
    assert writers.refused == 1 and "2 subscribers already" in logs[0]
    pub = FakePublisher()
    writers.install(pub)
    assert WriterSet.of(pub) is writers
    for w in got[:2]:
        w.close()


def test_a_subscriber_that_goes_away_is_removed_without_blame(sockets) -> None:
    logs: list[str] = []
    pub = FakePublisher()
    writers = WriterSet("/t", 1 << 30, 30.0, log=logs.append)
    writers.install(pub)
    w, r = sockets()
    pub.impl.add_connection(FakeConnection(w, "/gone"))
    r.close()
    for _ in range(50):  # bounded: the first write after the close fails with EPIPE / ECONNRESET
        before = writers.snapshot()
        pub.impl.publish(b"q" * MSG)
        writers.wait_written(before)
        if not pub.impl.connections:
            break
        time.sleep(0.01)
    wait_for(lambda: not pub.impl.connections)
    assert pub.impl.connections == [] and writers.dropped == 0 and logs == []
    assert writers.backoff.refused_for("/gone") == 0.0


def test_a_subscriber_that_fell_behind_costs_the_sender_its_lag_once(sockets) -> None:
    pub = FakePublisher()
    now = [0.0]
    writers = WriterSet("/t", max_queue_bytes=1 << 30, stall_s=60.0, lag_s=5.0)
    writers.install(pub)
    good_w, good_r = sockets()
    bad_w, _bad_r = sockets()
    pub.impl.add_connection(FakeConnection(good_w, "/robot"))
    pub.impl.add_connection(FakeConnection(bad_w, "/attacker"))
    got, stop = [0], threading.Event()
    t = reader(good_r, got, stop)
    waits = 0  # messages whose send had to wait out the lag (the clock only moves when a wait polls)

    def clock() -> float:
        nonlocal waits
        now[0] += 1.0
        return now[0]

    try:
        for _ in range(60):  # 15 MB: the non-reader falls behind within a few messages
            before = writers.snapshot()
            pub.impl.publish(b"w" * MSG)
            start = now[0]
            assert writers.wait_written(before, clock=clock) >= 1
            waits += int(now[0] - start >= 5.0)
    finally:
        stop.set()
        t.join(2)
    assert waits == 1, "only the first message after it fell behind waits the lag"
    bad = [w for w in writers.writers if w.endpoint == "/attacker"][0]
    assert bad.behind and not bad.dead
    for w in writers.writers:
        w.close()
