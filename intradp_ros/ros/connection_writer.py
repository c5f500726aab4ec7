"""Per-subscriber writers for a rospy publisher, so one subscriber that stops reading cannot stall the others.

rospy's synchronous publish (queue_size=None) writes each message into every subscriber's socket in turn with
`sendall`: a subscriber that connects and never reads fills its socket buffers and then blocks the publishing
thread, and every other subscriber with it, for as long as it likes (a socket timeout would be a limit on the
whole write, not on progress). rospy's own queued publish (queue_size=N) gives each connection a thread but
never drops a connection that stopped reading and silently drops the oldest messages of a healthy one.

`ConnectionWriter` wraps one subscriber connection (a rospy TCPROSTransport) instead: `write_data` only queues
the serialized message (the same bytes object is shared by all connections), and the writer's own thread sends
it in chunks with a short socket timeout, so it can see progress. The connection is closed, removed from the
topic and logged once when
- its queue holds more than `max_queue_bytes` (it reads slower than we publish), or
- it accepted no byte for `stall_s` seconds while it had data to send (it stopped reading, or hung).
A subscriber dropped again and again while another subscriber of the topic kept up is refused on reconnect for a
growing pause (`Backoff`), so a peer that keeps reconnecting costs one bounded queue, not a stall per attempt; a lone
subscriber that stalls (the network, or a hung peer) may reconnect at once.

`WriterSet.install(publisher)` puts writers on every new connection of a publisher; `WriterSet.wait_written`
is what RosTransport.send uses to return once the message left: when every connection wrote it, or when at least
one did and the others are still behind `lag_s` later (those keep their own bounded queue, and later messages do not
wait for them at all until they catch up, so a stuck subscriber costs the sender `lag_s` once, not per message).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from rospy.exceptions import TransportTerminated

from intradp_ros.core.log_throttle import LogThrottle

CHUNK = 256 << 10  # bytes per send() call: small enough that progress is seen often on slow links
POLL_S = 0.05  # socket timeout of one send() call


class Backoff:
    """Per-endpoint pause after repeated drops: the first drop costs nothing, the n-th (n >= 2) within `window_s`
    refuses reconnects for min(max_s, base_s * 2**(n-2)) seconds."""

    def __init__(
        self,
        base_s: float = 1.0,
        max_s: float = 60.0,
        window_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_s, self.max_s, self.window_s, self.clock = base_s, max_s, window_s, clock
        self._drops: dict[str, tuple[int, float]] = {}  # endpoint -> (drops in the window, last drop time)
        self._lock = threading.Lock()

    def dropped(self, endpoint: str) -> None:
        now = self.clock()
        with self._lock:
            n, last = self._drops.get(endpoint, (0, now))
            n = n + 1 if now - last <= self.window_s else 1
            self._drops[endpoint] = (n, now)
            if len(self._drops) > 1024:  # bounded: forget the oldest
                oldest = min(self._drops, key=lambda k: self._drops[k][1])
                del self._drops[oldest]

    def drops(self, endpoint: str) -> int:
        """Drops of `endpoint` counted in the current window."""
        with self._lock:
            return self._drops.get(endpoint, (0, 0.0))[0]

    def refused_for(self, endpoint: str) -> float:
        """Seconds the endpoint must still wait before a reconnect is accepted (0: accept now)."""
        with self._lock:
            n, last = self._drops.get(endpoint, (0, 0.0))
        if n < 2:
            return 0.0
        pause = min(self.max_s, self.base_s * 2 ** (n - 2))
        return float(max(0.0, last + pause - self.clock()))


class ConnectionWriter:
    """One subscriber connection with its own bounded queue, writer thread and progress watchdog.

    Behaves like the wrapped rospy transport (attributes are delegated), as rospy's QueuedConnection does."""

    def __init__(
        self,
        connection: Any,
        topic: str,
        max_queue_bytes: int,
        stall_s: float,
        progress: threading.Condition,
        on_drop: Callable[[ConnectionWriter, str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connection = connection
        self.topic = topic
        self.max_queue_bytes = int(max_queue_bytes)
        self.stall_s = float(stall_s)
        self._progress = progress
        self._on_drop = on_drop
        self._clock = clock
        self._queue: deque[bytes] = deque()
        self.queued_bytes = 0
        self.enqueued = 0  # messages given to write_data
        self.written = 0  # messages fully written into the socket
        self.last_progress = clock()
        self.drop_reason = ""
        self.offence = False  # dropped for stalling or overflowing (not for closing or a connection error)
        self.behind = False  # fell lag_s behind the others: senders stop waiting for it until its queue empties
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"intradp-writer {topic}", daemon=True)
        self._thread.start()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._connection, name)

    @property
    def dead(self) -> bool:
        return bool(self.drop_reason) or bool(getattr(self._connection, "done", False))

    @property
    def endpoint(self) -> str:
        return str(getattr(self._connection, "endpoint_id", "") or "?")

    def write_data(self, data: bytes) -> bool:
        """Queue one serialized message; never blocks. Raises the rospy transport's TransportTerminated once
        this connection was dropped (the publisher then closes and removes it)."""
        with self._cond:
            if not self.dead and self._queue and self.queued_bytes + len(data) > self.max_queue_bytes:
                reason = (
                    f"send queue would exceed {self.max_queue_bytes} bytes ({len(self._queue)} messages, "
                    f"{self.queued_bytes} bytes waiting): it reads slower than the topic is published"
                )
                self._drop_locked(reason, offence=True)
            if self.dead:
                raise TransportTerminated(self.drop_reason or "connection closed")
            if not self._queue:
                self.last_progress = self._clock()  # the stall clock runs only while data waits
            self._queue.append(data)
            self.queued_bytes += len(data)
            self.enqueued += 1
            self._cond.notify()
        return True

    def close(self) -> None:
        with self._cond:
            if not self.drop_reason:
                self.drop_reason = "closed"
            self._queue.clear()
            self.queued_bytes = 0
            self._cond.notify()
        self._connection.close()
        with self._progress:
            self._progress.notify_all()

    def _drop_locked(self, reason: str, offence: bool = False) -> None:
        if self.drop_reason:
            return
        self.drop_reason = reason
        self.offence = offence
        self._queue.clear()
        self.queued_bytes = 0
        self._cond.notify()
        # closing and the callback happen on another thread: write_data may run under rospy's publish lock
        threading.Thread(target=self._finish_drop, args=(reason,), daemon=True).start()

    def _finish_drop(self, reason: str) -> None:
        try:
            self._connection.close()
        finally:
            self._on_drop(self, reason)
            with self._progress:
                self._progress.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self.dead:
                    self._cond.wait(1.0)
                if self.dead:
                    return
                data = self._queue[0]
            if not self._send(data):
                return
            with self._cond:
                if self._queue and self._queue[0] is data:
                    self._queue.popleft()
                    self.queued_bytes -= len(data)
                self.written += 1
                if not self._queue:
                    self.behind = False  # caught up
                self.last_progress = self._clock()
            try:
                self._connection.stat_bytes += len(data)
                self._connection.stat_num_msg += 1
            except AttributeError:
                pass
            with self._progress:
                self._progress.notify_all()

    def _send(self, data: bytes) -> bool:
        """Write `data` in chunks; False when the connection was dropped (stalled, failed or closed)."""
        sock = getattr(self._connection, "socket", None)
        if sock is None:
            with self._cond:
                self._drop_locked("connection has no socket")
            return False
        view = memoryview(data)
        sent = 0
        try:
            sock.settimeout(POLL_S)
        except OSError as e:
            with self._cond:
                self._drop_locked(f"socket error: {e}")
            return False
        while sent < len(view):
            if self.dead:
                return False
            try:
                n = sock.send(view[sent : sent + CHUNK])
            except TimeoutError:
                idle = self._clock() - self.last_progress
                if idle >= self.stall_s:
                    with self._cond:
                        self._drop_locked(
                            offence=True,
                            reason=f"no byte accepted for {idle:.1f} s (stall limit {self.stall_s:g} s, {sent} of "
                            f"{len(view)} bytes of a message written): it stopped reading",
                        )
                    return False
                continue
            except OSError as e:
                with self._cond:
                    self._drop_locked(f"socket error: {e}")
                return False
            sent += n
            self.last_progress = self._clock()
        return True


class WriterSet:
    """The writers of one publisher: installs one on every new subscriber connection, refuses subscribers in
    back-off or beyond `max_connections` (one writer thread each), logs each drop once (and refusals throttled,
    with counts), and waits for a message to be written."""

    def __init__(
        self,
        topic: str,
        max_queue_bytes: int,
        stall_s: float,
        lag_s: float = 0.1,
        backoff: Backoff | None = None,
        log: Callable[[str], None] | None = None,
        max_connections: int = 16,
    ) -> None:
        self.topic = topic
        self.max_connections = int(max_connections)
        self.max_queue_bytes = int(max_queue_bytes)
        self.stall_s = float(stall_s)
        self.lag_s = float(lag_s)
        self.backoff = backoff if backoff is not None else Backoff()
        self._log = log or (lambda line: None)
        self.progress = threading.Condition()
        self.writers: list[ConnectionWriter] = []
        self.dropped = 0  # connections dropped for stalling or overflowing
        self.refused = 0  # reconnects refused during back-off
        self._refusals = LogThrottle(10.0)
        self._remove: Callable[[Any], None] | None = None

    def wrap(self, connection: Any) -> ConnectionWriter | None:
        """A writer for a new connection, or None (the connection is closed) when its endpoint is in back-off."""
        endpoint = str(getattr(connection, "endpoint_id", "") or "?")
        pause = self.backoff.refused_for(endpoint)
        if pause > 0:
            self.refused += 1
            n = self._refusals.hit(endpoint)
            if n:
                self._log(
                    f"{self.topic}: refused subscriber {endpoint[:200]} for {pause:.0f} s more (dropped repeatedly "
                    f"for not reading; {n} refusals)"
                )
            connection.close()
            return None
        with self.progress:
            live = [x for x in self.writers if not x.dead]
        if len(live) >= self.max_connections:
            self.refused += 1
            n = self._refusals.hit("too many")
            if n:
                self._log(
                    f"{self.topic}: refused subscriber {endpoint[:200]}: {len(live)} subscribers already (limit "
                    f"{self.max_connections}; {n} refusals)"
                )
            connection.close()
            return None
        w = ConnectionWriter(connection, self.topic, self.max_queue_bytes, self.stall_s, self.progress, self._dropped)
        with self.progress:
            self.writers = [x for x in self.writers if not x.dead] + [w]
        return w

    def _dropped(self, writer: ConnectionWriter, reason: str) -> None:
        """A writer stopped: remove it from the topic; an offence (stall, overflow) is counted, logged once and
        feeds the back-off; a closed or failed connection (the subscriber went away) is only removed."""
        if writer.offence:
            self.dropped += 1
            # back-off only for a subscriber that fell behind while another kept up (the link works, it does not
            # read); a lone subscriber that stalls is the network or a hung peer, which may reconnect at once
            with self.progress:
                others_ok = any(w is not writer and w.last_progress > writer.last_progress for w in self.writers)
            if others_ok:
                self.backoff.dropped(writer.endpoint)
            self._log(f"{self.topic}: dropped subscriber {writer.endpoint[:200]}: {reason}")
        if self._remove is not None:
            try:
                self._remove(writer)
            except Exception:  # noqa: BLE001 - the topic may be closing
                pass

    @classmethod
    def of(cls, publisher: Any) -> WriterSet | None:
        """The writers already installed on this publisher's topic in this process (rospy shares one topic
        implementation between Publisher objects of the same topic), else None."""
        found = getattr(publisher.impl, "_intradp_writers", None)
        return found if isinstance(found, WriterSet) else None

    def install(self, publisher: Any) -> None:
        """Wrap every future connection of a rospy Publisher (created with queue_size=None) in a writer."""
        impl = publisher.impl
        if getattr(impl, "_intradp_writers", None) is not None:
            raise RuntimeError(f"{self.topic}: writers already installed on this topic in this process")
        add = impl.add_connection

        def add_connection(c: Any) -> bool:
            w = self.wrap(c)
            return False if w is None else add(w)

        impl.add_connection = add_connection
        impl._intradp_writers = self
        self._remove = impl.remove_connection

    def snapshot(self) -> dict[ConnectionWriter, int]:
        """Messages queued so far per live writer (call before publishing)."""
        with self.progress:
            return {w: w.enqueued for w in self.writers if not w.dead}

    def wait_written(self, before: dict[ConnectionWriter, int], clock: Callable[[], float] = time.monotonic) -> int:
        """After a publish: wait until every live writer that took the message wrote it, or until at least one did
        and `lag_s` passed (the others are behind: their own queue keeps the message). Returns how many wrote it.
        Bounded: a writer with no progress for stall_s drops itself."""
        with self.progress:
            tickets = {w: w.enqueued for w in self.writers if w.enqueued > before.get(w, 0)}
            first_done: float | None = None
            while True:
                done = sum(1 for w, i in tickets.items() if w.written >= i)
                pending = [w for w, i in tickets.items() if w.written < i and not w.dead]
                if not pending:
                    return done
                if done and all(w.behind for w in pending):  # known laggards: their queues keep the message
                    return done
                now = clock()
                if done:
                    first_done = now if first_done is None else first_done
                    if now - first_done >= self.lag_s:
                        for w in pending:
                            w.behind = True
                        return done
                self.progress.wait(POLL_S)
