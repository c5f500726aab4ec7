"""robot_session: the handshake protocol, plan choice, deadline budget and local fallback, without ROS.

The handshake call and the client half are fakes (a server that answers as told; a half that fails as told), the
plan book is a real one of a two-convolution net, so the protocol is checked against what a server really sends.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from intradp_ros.core.executor import ExecutionError
from intradp_ros.core.link_health import DOWN, UP, LinkHealth
from intradp_ros.core.plan import Plan
from intradp_ros.core.plan_book import PlanBook, build_plan_book
from intradp_ros.core.profiler import profile_graph
from intradp_ros.core.robot_session import (
    NO_SESSION,
    FrameRunner,
    HandshakeReply,
    PlanChoice,
    ReportBox,
    SessionIds,
    SessionProtocol,
    SessionRefused,
    choose_plan,
    deadline_miss,
)
from intradp_ros.core.solver import SolverConfig
from intradp_ros.core.vocabulary import Mode

IDS = SessionIds("robot1", "toy", "w" * 8, "g" * 8)


@pytest.fixture(scope="module")
def book_and_graph(graph_and_input, tmp_path_factory: pytest.TempPathFactory):
    _m, g, x = graph_and_input
    robot = profile_graph(g, [x], repeats=1, sizes=2, step_overhead=False)
    book, _hit = build_plan_book(
        g,
        robot,
        robot.scaled(0.25, "server"),
        [0.5, 5, 50],
        config=SolverConfig(maxiter=2, popsize=6),
        cache_dir=tmp_path_factory.mktemp("cache"),
    )
    return book, g


class FakeServer:
    """A handshake call that answers from a script of replies and records what it was asked."""

    def __init__(self, *replies: HandshakeReply) -> None:
        self.replies = list(replies)
        self.calls: list[tuple] = []

    def __call__(self, ids: SessionIds, profile_json: str, timeout: float) -> HandshakeReply:
        self.calls.append((ids, profile_json, timeout))
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


def accepted(book: PlanBook) -> HandshakeReply:
    return HandshakeReply(True, True, "", book.to_json(), "cuda")


# ---------------------------------------------------------------------------------------------- protocol
def test_handshake_gives_the_book_and_brings_the_session_up(book_and_graph) -> None:
    book, g = book_and_graph
    server = FakeServer(accepted(book))
    p = SessionProtocol(IDS, g, server)
    got = p.handshake('{"profile": 1}', 3.0)
    assert p.book is got and [q.plan_id for q in got.plans] == [q.plan_id for q in book.plans]
    assert p.server_device == "cuda" and server.calls == [(IDS, '{"profile": 1}', 3.0)]
    assert p.health.session_ok
    p.health.on_peer(True)
    assert p.health.state == UP


def test_an_accepted_book_is_handed_to_the_on_book_hook_and_a_refused_one_is_not(book_and_graph) -> None:
    book, g = book_and_graph
    seen: list[str] = []
    p = SessionProtocol(IDS, g, FakeServer(accepted(book)), on_book=seen.append)
    p.handshake("{}", 3.0)
    assert seen == [book.to_json()]  # the client republishes it for the bandwidth monitor
    refused = SessionProtocol(IDS, g, FakeServer(HandshakeReply(True, True, "", "{}")), on_book=seen.append)
    with pytest.raises(SessionRefused):
        refused.handshake("{}", 3.0)
    assert seen == [book.to_json()]


@pytest.mark.parametrize(
    "reply, cause",
    [
        (HandshakeReply(True, False, "weights fingerprint differs"), "handshake refused: weights fingerprint differs"),
        (HandshakeReply(False, reason="no answer within 3 s"), "handshake failed: no answer within 3 s"),
        (HandshakeReply(True, True, "", '{"format": "intradp_plan_table/1"}'), "unusable plan book"),
    ],
)
def test_a_refused_or_broken_handshake_names_its_cause(book_and_graph, reply: HandshakeReply, cause: str) -> None:
    _book, g = book_and_graph
    p = SessionProtocol(IDS, g, FakeServer(reply))
    with pytest.raises(SessionRefused, match=cause):
        p.handshake("{}", 3.0)
    assert p.book is None and not p.health.session_ok


def test_step_handshakes_then_heartbeats(book_and_graph) -> None:
    book, g = book_and_graph
    server = FakeServer(accepted(book), HandshakeReply(True, True))
    profiles = []
    p = SessionProtocol(IDS, g, server)
    assert p.step(lambda: profiles.append(1) or "{}", 60.0, 1.0) is True
    assert p.step(lambda: profiles.append(1) or "{}", 60.0, 1.0) is True
    assert profiles == [1]  # the profile is made for the full handshake only
    assert [c[1] for c in server.calls] == ["{}", ""] and [c[2] for c in server.calls] == [60.0, 1.0]


class SolvingServer:
    """Answers heartbeats at once; every full handshake after the first (a renewal) waits for `release`, as a server
    solving a new plan book for minutes does, then gives `renewal` (a reply, or an exception to raise)."""

    def __init__(self, book: PlanBook, renewal: Any = None, blocked: bool = True) -> None:
        self.book, self.renewal = book, renewal if renewal is not None else accepted(book)
        self.release = threading.Event()
        if not blocked:
            self.release.set()
        self.renewal_started = threading.Event()
        self.calls: list[str] = []
        self.full = 0
        self.in_flight = False  # a renewal handshake is being answered
        self.beats_during_renewal = 0
        self.beat_reply = HandshakeReply(True, True)

    def __call__(self, ids: SessionIds, profile_json: str, timeout: float) -> HandshakeReply:
        self.calls.append(profile_json)
        if not profile_json:
            if self.in_flight:
                self.beats_during_renewal += 1
            return self.beat_reply
        self.full += 1
        if self.full == 1:
            return accepted(self.book)
        self.in_flight = True
        self.renewal_started.set()
        self.release.wait(10.0)  # bounded: a test that forgot to release still ends
        self.in_flight = False
        if isinstance(self.renewal, Exception):
            raise self.renewal
        return self.renewal


def test_a_changed_profile_renews_in_the_background_while_heartbeats_go_on(book_and_graph) -> None:
    """The camera passthrough turned on: the session handshakes again for a book that prices it, but the server's
    solve (up to minutes) must not stop the heartbeats nor the held book; the new book replaces it when it comes."""
    book, g = book_and_graph
    profile = ["p1"]
    server = SolvingServer(book)
    p = SessionProtocol(IDS, g, server, revision=lambda: profile[0])
    try:
        p.step(lambda: profile[0], 3.0, 1.0)
        p.step(lambda: profile[0], 3.0, 1.0)  # same profile: a heartbeat
        assert server.calls == ["p1", ""]
        held = p.book
        profile[0] = "p2"
        assert p.step(lambda: profile[0], 3.0, 1.0)
        assert server.renewal_started.wait(5.0) and p.renewing
        for _ in range(3):  # the session loop goes on while the server solves
            assert p.step(lambda: profile[0], 3.0, 1.0)
        assert server.beats_during_renewal >= 3, "the renewal blocked the heartbeats"
        assert server.full == 2, "one renewal at a time"
        assert p.book is held and p.health.session_ok and p.waiting_since is None
    finally:
        server.release.set()
    assert p.join_renewal(5.0)
    assert p.book is not held and p.sent_profile_json == "p2" and p.renew_failures == 0
    p.step(lambda: profile[0], 3.0, 1.0)
    assert server.calls[-1] == "" and server.full == 2, "renewed once: heartbeats again"


def test_no_session_during_a_renewal_keeps_the_book_for_the_renewal_to_decide(book_and_graph) -> None:
    """An authenticated renewal replaces the session key: a heartbeat in between is answered "no session". That
    must not drop the held book nor start a second handshake while the renewal is in flight."""
    book, g = book_and_graph
    profile = ["p1"]
    server = SolvingServer(book)
    p = SessionProtocol(IDS, g, server, revision=lambda: profile[0])
    try:
        p.step(lambda: profile[0], 3.0, 1.0)
        held = p.book
        profile[0] = "p2"
        p.step(lambda: profile[0], 3.0, 1.0)
        assert server.renewal_started.wait(5.0)
        beats = len(server.calls)
        server.beat_reply = HandshakeReply(True, False, NO_SESSION)
        p.step(lambda: profile[0], 3.0, 1.0)
        assert len(server.calls) == beats + 1 and p.book is held and server.full == 2
    finally:
        server.release.set()
    assert p.join_renewal(5.0) and p.book is not held
    assert not p.step(lambda: profile[0], 3.0, 1.0) and p.book is None, "no renewal in flight: handshake again"


def test_a_failed_renewal_keeps_the_book_and_retries_with_back_off(book_and_graph, caplog) -> None:
    book, g = book_and_graph
    profile = ["p1"]
    now = [0.0]
    server = SolvingServer(book, renewal=HandshakeReply(False, reason="no answer within 3 s"), blocked=False)
    p = SessionProtocol(IDS, g, server, revision=lambda: profile[0], clock=lambda: now[0])
    p.step(lambda: profile[0], 3.0, 1.0)
    held = p.book
    profile[0] = "p2"

    def renewals_after(t: float) -> int:
        now[0] = t
        p.step(lambda: profile[0], 3.0, 1.0)
        assert p.join_renewal(5.0)
        return server.full - 1

    with caplog.at_level(logging.WARNING):
        assert renewals_after(0.0) == 1 and p.book is held and p.renew_failures == 1
    assert "new plan book not received (handshake failed: no answer within 3 s)" in caplog.text
    assert "retrying in 5 s" in caplog.text
    assert renewals_after(4.9) == 1, "retried before its back-off"
    server.renewal = RuntimeError("service proxy broke")  # any exception is a failed renewal, never a dead loop
    assert renewals_after(5.1) == 2 and p.renew_failures == 2 and p.book is held
    assert renewals_after(15.0) == 2, "the second back-off doubles (10 s)"
    server.renewal = accepted(book)
    assert renewals_after(15.2) == 3 and p.renew_failures == 0 and p.book is not held
    assert p.sent_profile_json == "p2"
    assert renewals_after(100.0) == 3, "renewed: heartbeats again"


def test_a_restarted_server_means_handshake_again_at_once(book_and_graph) -> None:
    book, g = book_and_graph
    server = FakeServer(accepted(book), HandshakeReply(True, False, NO_SESSION), accepted(book))
    p = SessionProtocol(IDS, g, server)
    p.handshake("{}", 1.0)
    p.health.on_peer(True)
    assert p.step(lambda: "{}", 1.0, 1.0) is False  # no wait: the next round handshakes
    assert p.book is None and p.health.state == DOWN
    assert p.step(lambda: "{}", 1.0, 1.0) is True and p.book is not None and p.health.state == UP


def test_a_missed_heartbeat_keeps_the_book_but_goes_local(book_and_graph) -> None:
    book, g = book_and_graph
    p = SessionProtocol(IDS, g, FakeServer(accepted(book), HandshakeReply(False, reason="timeout")))
    p.handshake("{}", 1.0)
    p.health.on_peer(True)
    assert p.step(lambda: "{}", 1.0, 1.0) is True
    assert p.book is not None and not p.health.distributed_allowed()


def test_repeated_refusals_are_logged_once(book_and_graph, caplog: pytest.LogCaptureFixture) -> None:
    _book, g = book_and_graph
    p = SessionProtocol(IDS, g, FakeServer(HandshakeReply(True, False, "model not served")), throttle_s=60.0)
    with caplog.at_level(logging.ERROR, logger="intradp_ros.core.robot_session"):
        for _ in range(5):
            p.step(lambda: "{}", 1.0, 1.0)
    assert sum("model not served" in r.getMessage() for r in caplog.records) == 1


def test_a_wait_for_the_server_is_announced_once_and_its_time_kept_until_accepted(
    book_and_graph, caplog: pytest.LogCaptureFixture
) -> None:
    book, g = book_and_graph
    away = HandshakeReply(False, reason="no answer within 1 s")
    p = SessionProtocol(IDS, g, FakeServer(away, away, away, accepted(book)))
    with caplog.at_level(logging.INFO, logger="intradp_ros.core.robot_session"):
        for _ in range(3):
            p.step(lambda: "{}", 600.0, 1.0)
        assert p.book is None and p.waiting_since is not None  # diagnostics show how long the client has waited
        p.step(lambda: "{}", 600.0, 1.0)
    assert p.book is not None and p.waiting_since is None
    assert sum("handshake sent" in r.getMessage() for r in caplog.records) == 1
    assert sum("no answer within 1 s" in r.getMessage() for r in caplog.records) == 1  # retries logged, throttled


# ---------------------------------------------------------------------------------------------- plan choice
def test_plan_choice_needs_a_book_an_up_link_and_a_distributed_mode(book_and_graph) -> None:
    book, g = book_and_graph
    device = Plan.device_only(g)
    assert choose_plan(Mode.INTRADP, None, 5.0, True, device) == PlanChoice(device, False)
    assert choose_plan(Mode.INTRADP, book, 5.0, False, device) == PlanChoice(device, False)
    assert choose_plan(Mode.DEVICE_ONLY, book, 5.0, True, device) == PlanChoice(device, False)
    for mode in (Mode.INTRADP, Mode.SERVER_ONLY, Mode.SPSO_GA):
        c = choose_plan(mode, book, 5.0, True, device)
        assert c.distributed and c.plan is book.plan_for(mode, 5.0)
    assert choose_plan(Mode.SERVER_ONLY, book, None, True, device).plan is book.plan_for(Mode.SERVER_ONLY, None)


# ---------------------------------------------------------------------------------------------- frames
class FakeHalf:
    """A client half whose distributed runs succeed or fail as told; the device-only plan always works."""

    def __init__(self, device_plan: Plan, fail: str | None = None, during: Any = None) -> None:
        self.device_plan, self.fail, self.during = device_plan, fail, during
        self.timeout = 30.0
        self.last_request_id = 0
        self.last_idle: list = []
        self.aborted: list[str] = []
        self.timeouts: list[float] = []

    def infer(self, plan: Plan, *inputs: Any) -> Any:
        self.last_request_id += 1
        if plan is self.device_plan:
            return ("local", inputs)
        self.timeouts.append(self.timeout)
        self.last_idle = [(1.0, 2.0)]
        if self.during is not None:
            self.during()
        if self.fail:
            raise ExecutionError(self.fail)
        return ("distributed", inputs)

    def abort(self, reason: str) -> bool:
        self.aborted.append(reason)
        return True


def test_a_distributed_frame_gets_the_deadline_minus_the_local_fallback(book_and_graph) -> None:
    book, g = book_and_graph
    device = Plan.device_only(g)
    half = FakeHalf(device)
    runner = FrameRunner(half, device, deadline_s=2.0, fallback_margin=1.5)
    runner.local_s = 0.4
    out = runner.run(PlanChoice(book.plan_for(Mode.INTRADP, 5.0), True), ("x",), elapsed_s=0.1)
    assert out.outputs == ("distributed", ("x",)) and out.distributed and not out.fell_back
    assert half.timeouts == [pytest.approx(2.0 - 0.1 - 0.4 * 1.5)]
    assert out.request_id == 1 and out.idle == [(1.0, 2.0)]
    runner.local_s = 5.0
    runner.run(PlanChoice(book.plan_for(Mode.INTRADP, 5.0), True), ("x",))
    assert half.timeouts[-1] == runner.min_budget_s  # never zero or negative


def test_a_failed_distributed_frame_finishes_locally_and_takes_the_link_down(book_and_graph) -> None:
    book, g = book_and_graph
    device = Plan.device_only(g)
    health = LinkHealth()
    health.on_session(True, "ok")
    health.on_peer(True)
    runner = FrameRunner(FakeHalf(device, fail="tile (3, 0) missing"), device, deadline_s=2.0, health=health)
    out = runner.run(PlanChoice(book.plan_for(Mode.INTRADP, 5.0), True), ("x",))
    assert out.outputs == ("local", ("x",)) and out.fell_back and "tile (3, 0) missing" in out.failure
    assert runner.fallbacks == 1 and runner.local_s is not None
    assert health.state == DOWN
    assert not choose_plan(Mode.INTRADP, book, 5.0, health.distributed_allowed(), device).distributed


def test_without_fallback_the_failure_is_raised(book_and_graph) -> None:
    book, g = book_and_graph
    device = Plan.device_only(g)
    runner = FrameRunner(FakeHalf(device, fail="server gone"), device, fallback=False)
    with pytest.raises(ExecutionError, match="server gone"):
        runner.run(PlanChoice(book.plan_for(Mode.SERVER_ONLY, 5.0), True), ("x",))
    assert runner.fallbacks == 0


def test_a_local_function_replaces_the_device_only_plan(book_and_graph) -> None:
    book, g = book_and_graph
    device = Plan.device_only(g)
    half = FakeHalf(device, fail="x")
    runner = FrameRunner(half, device, local=lambda *xs: ("own forward", xs))
    out = runner.run(PlanChoice(book.plan_for(Mode.SERVER_ONLY, 5.0), True), (1, 2))
    assert out.outputs == ("own forward", (1, 2))
    assert half.timeouts == [30.0]  # no deadline: the half's own timeout is left alone


def test_a_lost_peer_aborts_the_frame_in_flight_only(book_and_graph) -> None:
    book, g = book_and_graph
    device = Plan.device_only(g)
    health = LinkHealth()
    runner: FrameRunner
    half = FakeHalf(device, during=lambda: runner.on_peer(False))
    runner = FrameRunner(half, device, health=health)
    runner.run(PlanChoice(book.plan_for(Mode.SERVER_ONLY, 5.0), True), ("x",))
    assert len(half.aborted) == 1 and "lost its peer" in half.aborted[0]
    runner.on_peer(False)  # nothing in flight now
    assert len(half.aborted) == 1


def test_deadline_miss_text() -> None:
    assert deadline_miss(10.0, 11.5, 2.0) == ""
    assert deadline_miss(10.0, 12.5, 2.0) == "deadline missed: 2.500 s > 2 s"


# ---------------------------------------------------------------------------------------------- reports
def test_report_box_waits_evicts_and_times_out() -> None:
    box: ReportBox[str] = ReportBox(capacity=2)
    box.put(1, "a")
    assert box.take(1, 0.0) == "a" and box.take(1, 0.01) is None
    for rid in (2, 3, 4):
        box.put(rid, str(rid))
    assert box.take(2, 0.0) is None and box.take(4, 0.0) == "4"  # the oldest went first
    late = threading.Timer(0.05, box.put, (9, "late"))
    late.start()
    assert box.take(9, 30.0) == "late"  # woken by the put, not by the timeout
    late.join()


def test_repeated_distributed_failures_back_off_and_a_success_resets(book_and_graph) -> None:
    from intradp_ros.core.robot_session import FailureBackoff

    book, g = book_and_graph
    device = Plan.device_only(g)
    half = FakeHalf(device, fail="server error")
    runner = FrameRunner(half, device, deadline_s=2.0)
    now = [0.0]
    runner.backoff = FailureBackoff(base_s=1.0, max_s=4.0, clock=lambda: now[0])
    split = PlanChoice(book.plan_for(Mode.INTRADP, 5.0), True)
    assert runner.run(split, ("x",)).fell_back  # first failure: no pause
    assert runner.run(split, ("x",)).fell_back  # second: 1 s local
    tries = len(half.timeouts)
    out = runner.run(split, ("x",))
    assert not out.distributed and out.outputs == ("local", ("x",)) and len(half.timeouts) == tries  # not tried
    now[0] = 1.5
    assert runner.run(split, ("x",)).fell_back and runner.backoff.until == 3.5  # third failure: 2 s
    now[0] = 4.0
    half.fail = None
    assert runner.run(split, ("x",)).distributed and runner.backoff.failures == 0  # a success resets it
    now[0] = 100.0
    assert [runner.backoff.record(False) for _ in range(6)] == [0.0, 1.0, 2.0, 4.0, 4.0, 4.0]  # capped
