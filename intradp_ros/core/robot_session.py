"""The robot's side of a session, ROS-free: handshake protocol, plan choice, deadline and local fallback.

Three front ends run frames on the robot: the client nodes (ros/client_node.py), the `IntraDP` API in-process
(api.py) and its remote path (ros/remote_session.py). They share this code, so "what happens when the server stops
answering" has one answer:

- `SessionProtocol` speaks the handshake protocol through a `HandshakeCall` (the ROS service call in
  ros/, a fake in tests): a full handshake (with the client's profile) returns the server's plan book; heartbeats
  (no profile) check the session is still held; "no session" means the server restarted, so handshake again.
  Every result goes to `LinkHealth`, which alone decides whether the next frame may use the server.
- `choose_plan` picks the frame's plan: the mode's plan at the current bandwidth bucket when the link is up,
  else the device-only plan.
- `FrameRunner` runs one frame: distributed with a time budget of the frame deadline minus what finishing
  locally would take (so a missing tile is noticed while a local result still fits), and on any
  `ExecutionError` finishes the frame locally, reporting the failure to the link health.
- `ReportBox` holds the server's per-request reports until the frame's statistics are made.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from intradp_ros.core.executor import ExecutionError
from intradp_ros.core.link_health import LinkHealth
from intradp_ros.core.log_throttle import LogThrottle
from intradp_ros.core.plan import Plan
from intradp_ros.core.plan_book import PlanBook, PlanBookError
from intradp_ros.core.vocabulary import Mode

log = logging.getLogger(__name__)
_FRAME_LOG = LogThrottle(10.0)  # per-frame lines: the first at once, then one per 10 s with the count

NO_SESSION = "no session"  # the server's answer to a heartbeat for a session it does not hold (it restarted)


@dataclass(frozen=True)
class SessionIds:
    """What identifies a session: the robot and its replica (model id, weights and graph fingerprints)."""

    robot: str
    model_id: str
    weights_fingerprint: str
    graph_fingerprint: str

    @classmethod
    def of(cls, robot: str, replica: Any) -> SessionIds:
        """From a `core.session.Replica` (or anything with the same attributes)."""
        return cls(robot, replica.model_id, replica.weights_fingerprint, replica.graph_fingerprint)


@dataclass(frozen=True)
class HandshakeReply:
    """One handshake call's result: the server's answer, or why there is none (answered False)."""

    answered: bool
    accepted: bool = False
    reason: str = ""  # the server's refusal, or why the call failed (service missing, timeout, ...)
    plan_table_json: str = ""
    server_device: str = ""
    server_profile_json: str = ""  # the server's profile the book was solved with (the prediction rebuilds it)


# (ids, client profile JSON ("" for a heartbeat), timeout in s) -> reply; must return within the timeout.
HandshakeCall = Callable[[SessionIds, str, float], HandshakeReply]


class SessionRefused(RuntimeError):
    """The server refused the session, sent an unusable plan book, or did not answer."""


class _Throttle:
    """True at most once per `period` seconds for the same key (repeated failures log once, not per attempt)."""

    def __init__(self, period: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.period, self.clock = period, clock
        self._last: dict[str, float] = {}

    def __call__(self, key: str) -> bool:
        now = self.clock()
        if now - self._last.get(key, -1e18) < self.period:
            return False
        self._last[key] = now
        return True


class SessionProtocol:
    """Client side of the handshake protocol: holds the plan book while the server holds the session."""

    def __init__(
        self,
        ids: SessionIds,
        graph: Any,
        call: HandshakeCall,
        health: LinkHealth | None = None,
        throttle_s: float = 10.0,
        on_book: Callable[[str], None] | None = None,
        revision: Callable[[], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`revision`: a cheap token of what the profile adds to the measured one (the client's camera entry); when
        it differs from the accepted handshake's, the session handshakes again in the background (`_renew`)."""
        self.ids, self.graph, self.call = ids, graph, call
        self.revision = revision
        self.clock = clock
        self.on_book = on_book  # hook: the accepted plan book's JSON (the client republishes it for the monitor)
        self.health = health if health is not None else LinkHealth()
        self.book: PlanBook | None = None
        self.server_device = ""
        self.sent_profile_json = ""  # the profile of the accepted handshake (its book was solved for it)
        self.server_profile_json = ""
        self._revision: object = None  # `revision()` when the accepted handshake's profile was made
        # a failed renewal (the held book stays in use) is retried after renew_after_s, doubling per failure in a
        # row up to renew_max_s (a server that refuses or cannot solve is not asked again every heartbeat)
        self.renew_after_s = 5.0
        self.renew_max_s = 300.0
        self.renew_failures = 0
        self._renew_at = 0.0  # clock() before which no renewal starts (after a failure)
        self._renewal: threading.Thread | None = None  # the renewal in flight (its handshake blocks only itself)
        self._accept_lock = threading.Lock()  # one accepted handshake installs its book and profiles at a time
        self.waiting_since: float | None = None  # monotonic time the pending handshake began (diagnostics)
        self._throttle = _Throttle(throttle_s)
        self._prefix = f"client {ids.robot}: "

    def _health(self, line: str | None) -> None:
        if line:
            log.info("%s%s", self._prefix, line)

    def handshake(self, profile_json: str, timeout: float) -> PlanBook:
        """One full handshake; the server's plan book (also kept in `book`), SessionRefused naming the cause."""
        if self.waiting_since is None:  # the first attempt of a wait is announced; retries are logged by step()
            self.waiting_since = time.monotonic()
            log.info(
                "%shandshake sent, waiting up to %.0f s (a server's first plan-book solve takes minutes)",
                self._prefix,
                timeout,
            )
        return self._accept(self.call(self.ids, profile_json, timeout), profile_json)

    def _accept(self, reply: HandshakeReply, profile_json: str) -> PlanBook:
        """Install the book of an accepted full handshake (SessionRefused naming the cause otherwise)."""
        if not reply.accepted:
            why = f"handshake refused: {reply.reason}" if reply.answered else f"handshake failed: {reply.reason}"
            raise SessionRefused(why)
        try:
            book = PlanBook.from_json(reply.plan_table_json, self.graph)
        except PlanBookError as e:
            raise SessionRefused(f"server sent an unusable plan book: {e}") from None
        with self._accept_lock:
            self.book, self.server_device = book, reply.server_device
            self.sent_profile_json, self.server_profile_json = profile_json, reply.server_profile_json
            self.waiting_since = None
            if self.on_book is not None:
                self.on_book(reply.plan_table_json)
        log.info(
            "%shandshake accepted by %s server (%d plans, buckets %g..%g MB/s)",
            self._prefix,
            reply.server_device or "a",
            len(book.plans),
            book.buckets[0],
            book.buckets[-1],
        )
        self._health(self.health.on_session(True, "handshake accepted"))
        return book

    def heartbeat(self, timeout: float) -> bool:
        """Is the session still held? A "no session" answer drops the plan book (handshake again)."""
        reply = self.call(self.ids, "", timeout)
        if reply.accepted:
            self._health(self.health.on_session(True, "heartbeat answered"))
            return True
        self._health(self.health.on_session(False, f"heartbeat failed: {reply.reason}"))
        if reply.answered and reply.reason == NO_SESSION:
            if self.renewing:  # the renewal may just have replaced the session (and its key): it decides
                return False
            log.warning("%sserver lost the session (restarted?): handshaking again", self._prefix)
            self.book = None
        return False

    def step(self, profile_json: Callable[[], str], handshake_timeout: float, heartbeat_timeout: float) -> bool:
        """One round of the session loop: handshake when no book is held, else a heartbeat.

        Returns False when the next round should follow at once (the session was just lost), True when the
        caller should wait its heartbeat period first.
        """
        if self.book is None:
            try:
                self._handshake_revised(profile_json, handshake_timeout)
            except SessionRefused as e:
                # every timeout and refusal is logged, each distinct cause at most once per throttle period (a
                # server that is away answers a retry every heartbeat period)
                if self._throttle(str(e)):
                    log.error("%s%s: retrying", self._prefix, e)
            return True
        self._renew(profile_json, handshake_timeout)  # in the background: the heartbeats go on meanwhile
        return self.heartbeat(heartbeat_timeout) or self.book is not None

    def _handshake_revised(self, profile_json: Callable[[], str], timeout: float) -> None:
        rev = self.revision() if self.revision is not None else None
        self.handshake(profile_json(), timeout)
        self._revision = rev

    @property
    def renewing(self) -> bool:
        """True while a renewal handshake is in flight (the held book stays in use meanwhile)."""
        return self._renewal is not None and self._renewal.is_alive()

    def _renew(self, profile_json: Callable[[], str], timeout: float) -> bool:
        """Start a handshake in the background when the profile's revision changed since the accepted handshake
        (the camera passthrough was verified or turned off: the book must price what the robot sends). The server
        may solve a new book for minutes: the held book stays in use and the session loop goes on heartbeating
        (a blocked loop would send no heartbeat and the link would be declared down). True when one started."""
        if self.revision is None or self.renewing or self.clock() < self._renew_at:
            return False
        rev = self.revision()
        if rev == self._revision:
            return False
        profile = profile_json()
        log.info(
            "%sprofile changed (camera passthrough): handshaking again in the background for a matching plan book "
            "(the held one stays in use)",
            self._prefix,
        )
        self._renewal = threading.Thread(
            target=self._renewal_run, args=(profile, rev, timeout), name="session-renewal", daemon=True
        )
        self._renewal.start()
        return True

    def _renewal_run(self, profile: str, rev: object, timeout: float) -> None:
        """One renewal handshake (the renewal thread): its book replaces the held one when accepted; a failure
        keeps the held book and schedules the next try with back-off."""
        try:
            self._accept(self.call(self.ids, profile, timeout), profile)
        except Exception as e:  # noqa: BLE001 - a renewal failure must never end the session: logged, retried
            self.renew_failures += 1
            delay = min(self.renew_max_s, self.renew_after_s * 2 ** (self.renew_failures - 1))
            self._renew_at = self.clock() + delay
            cause = str(e) if isinstance(e, SessionRefused) else f"{type(e).__name__}: {e}"
            log.warning(
                "%snew plan book not received (%s): keeping the held one, retrying in %.0f s (failure %d in a row)",
                self._prefix,
                cause,
                delay,
                self.renew_failures,
            )
            return
        self._revision, self.renew_failures, self._renew_at = rev, 0, 0.0

    def join_renewal(self, timeout: float) -> bool:
        """Wait at most `timeout` s for the renewal in flight; True when none is left running."""
        t = self._renewal
        if t is not None:
            t.join(timeout)
        return not self.renewing

    def on_error(self, reason: str) -> None:
        """The session loop itself failed: frames run locally, the next round handshakes again."""
        self._health(self.health.on_failure(reason))
        self.book = None


@dataclass(frozen=True)
class PlanChoice:
    plan: Plan
    distributed: bool


def choose_plan(
    mode: Mode, book: PlanBook | None, bucket: float | None, link_up: bool, device_plan: Plan
) -> PlanChoice:
    """The frame's plan: the mode's plan at `bucket` (MB/s; None: the book's middle) when the link is up and a book
    is held, else the device-only plan (which never touches the server)."""
    if mode == Mode.DEVICE_ONLY or book is None or not link_up:
        return PlanChoice(device_plan, False)
    return PlanChoice(book.plan_for(mode, bucket), True)


@dataclass
class FrameOutcome:
    """What running one frame gave: the outputs and how they were made."""

    outputs: Any
    plan: Plan
    distributed: bool  # the plan used the server
    fell_back: bool  # the distributed run failed and the frame was finished locally
    request_id: int
    idle: list[tuple[float, float]] = field(default_factory=list)  # robot idle intervals of the distributed run
    failure: str = ""  # why the distributed run failed (when fell_back)


class FailureBackoff:
    """Consecutive distributed failures make the client stay local for a growing pause: none after the first,
    then base_s, 2 x base_s, ... up to max_s; a distributed frame that succeeds resets it. (A server that fails every
    request would otherwise cost every frame a wasted distributed attempt.)"""

    def __init__(self, base_s: float = 0.5, max_s: float = 8.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.base_s, self.max_s, self.clock = base_s, max_s, clock
        self.failures = 0
        self.until = 0.0

    def record(self, ok: bool) -> float:
        """One distributed frame's outcome; returns the pause started now (0 when none)."""
        if ok:
            self.failures, self.until = 0, 0.0
            return 0.0
        self.failures += 1
        if self.failures < 2:
            return 0.0
        pause = float(min(self.max_s, self.base_s * 2 ** (self.failures - 2)))
        self.until = self.clock() + pause
        return pause

    def active(self) -> bool:
        return self.clock() < self.until


class FrameRunner:
    """Runs frames on a client half: distributed within the frame's budget, else (or on failure) locally.

    `half` is the engine's client half (`infer(plan, *inputs)`, `timeout`, `last_request_id`, `last_idle`,
    `abort(reason)`); `local(*inputs)` computes a frame without the server (default: the half's device-only plan).
    With `deadline_s` None the half's own timeout is left alone (the API's fixed timeout); with `fallback` False a
    failed distributed run raises instead of finishing locally.
    """

    def __init__(
        self,
        half: Any,
        device_plan: Plan,
        deadline_s: float | None = None,
        fallback_margin: float = 1.5,
        health: LinkHealth | None = None,
        local: Callable[..., Any] | None = None,
        fallback: bool = True,
        min_budget_s: float = 0.05,
        label: str = "",
    ) -> None:
        self.half, self.device_plan = half, device_plan
        self._prefix = f"{label}: " if label else ""
        self.deadline_s, self.fallback_margin, self.min_budget_s = deadline_s, fallback_margin, min_budget_s
        self.health = health
        self.local = local
        self.fallback = fallback
        self.local_s: float | None = None  # smoothed time of a local frame (measured, or set by calibration)
        self.fallbacks = 0
        self.backoff = FailureBackoff()  # consecutive distributed failures: local for a growing pause
        self._running = threading.Event()

    @property
    def distributed_running(self) -> bool:
        return self._running.is_set()

    def distributed_budget(self, elapsed_s: float) -> float:
        """Time the distributed run may take: what is left of the deadline minus the local fallback's time."""
        assert self.deadline_s is not None
        local_budget = (self.local_s or 0.0) * self.fallback_margin
        return max(self.min_budget_s, self.deadline_s - elapsed_s - local_budget)

    def run_local(self, *inputs: Any) -> Any:
        """One frame without the server; its time feeds the fallback budget."""
        t0 = time.perf_counter()
        out = self.local(*inputs) if self.local is not None else self.half.infer(self.device_plan, *inputs)
        dt = time.perf_counter() - t0
        self.local_s = dt if self.local_s is None else 0.8 * self.local_s + 0.2 * dt
        return out

    def run(self, choice: PlanChoice, inputs: Sequence[Any], elapsed_s: float = 0.0) -> FrameOutcome:
        """Run one frame as chosen; a failed distributed run is finished locally (or raises without fallback)."""
        if choice.distributed and self.fallback and self.backoff.active():  # repeated failures: stay local a while
            choice = PlanChoice(self.device_plan, False)
        if not choice.distributed:
            outputs = self.run_local(*inputs)
            return FrameOutcome(outputs, choice.plan, False, False, getattr(self.half, "last_request_id", 0))
        if self.deadline_s is not None:
            self.half.timeout = self.distributed_budget(elapsed_s)
        self._running.set()
        try:
            outputs = self.half.infer(choice.plan, *inputs)
            failure = ""
        except ExecutionError as e:
            failure = str(e)
            if self.health is not None:
                line = self.health.on_failure(f"distributed frame failed: {e}")
                if line:
                    log.info("%s%s", self._prefix, line)
            if not self.fallback:
                raise
        finally:
            self._running.clear()
        rid, idle = getattr(self.half, "last_request_id", 0), list(getattr(self.half, "last_idle", []))
        self._record_outcome(failure)
        if failure:
            self.fallbacks += 1
            if n := _FRAME_LOG.hit("fallback"):
                log.warning(
                    "%srequest %d failed (%s): finishing the frame locally (%d such frames since the last line)",
                    self._prefix,
                    rid,
                    failure[:200],
                    n,
                )
            outputs = self.run_local(*inputs)
        return FrameOutcome(outputs, choice.plan, True, bool(failure), rid, idle, failure)

    def _record_outcome(self, failure: str) -> None:
        """Feed the back-off; announce a pause when one starts."""
        pause = self.backoff.record(not failure)
        if pause:
            log.warning(
                "%s%d distributed frames failed in a row: frames run locally for %.1f s before the server is tried "
                "again",
                self._prefix,
                self.backoff.failures,
                pause,
            )

    def on_peer(self, connected: bool) -> str | None:
        """The tile link gained or lost its peer: update the link health; abort a distributed frame in flight
        when the peer is gone (it finishes locally at once instead of waiting for its budget to run out)."""
        line = self.health.on_peer(connected) if self.health is not None else None
        if (
            not connected
            and self.distributed_running
            and self.half.abort("server disconnected (tile link lost its peer)")
        ):
            log.warning("%sserver disconnected mid-frame: finishing it locally", self._prefix)
        return line


def deadline_miss(start: float, end: float, deadline_s: float) -> str:
    """The error text of a frame that took longer than its deadline ('' when it did not)."""
    if end - start > deadline_s:
        return f"deadline missed: {end - start:.3f} s > {deadline_s:g} s"
    return ""


R = TypeVar("R")


class ReportBox(Generic[R]):
    """The server's per-request reports, kept (the newest `capacity`) until a frame's statistics take them."""

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        self._reports: dict[int, R] = {}
        self._cv = threading.Condition()

    def put(self, request_id: int, report: R) -> None:
        with self._cv:
            self._reports[int(request_id)] = report
            while len(self._reports) > self.capacity:
                self._reports.pop(next(iter(self._reports)))
            self._cv.notify_all()

    def take(self, request_id: int, timeout: float) -> R | None:
        """The report of `request_id`, waiting at most `timeout` s for it (None when it does not come)."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while request_id not in self._reports:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cv.wait(left)
            return self._reports.pop(request_id)
