"""Plan-book solves in a worker process (plain JSON in and out) and one solve per book at a time."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from intradp_ros.core.plan_book import BookKeys, PlanBook
from intradp_ros.core.power import PowerModel
from intradp_ros.core.profiler import profile_graph
from intradp_ros.core.session import ModelConfig
from intradp_ros.core.solver import SolverConfig
from intradp_ros.models.plan_book_worker import SolveCoalescer, SolveError, SolveRefused, solve_in_worker
from intradp_ros.models.replica import load_replica


def _keys(key: str, context: str = "ctx", totals=(1.0, 0.25)) -> BookKeys:
    return BookKeys(context, key, Path("/nonexistent") / key, totals, Path("/nonexistent"))


def _race(coalescer: SolveCoalescer, requests, run):
    """Start every request at once; returns [(result or exception, joined)] in request order."""
    out = [None] * len(requests)
    start = threading.Barrier(len(requests))

    def one(i: int, keys: BookKeys) -> None:
        start.wait(5)
        try:
            out[i] = coalescer.solve(keys, f"robot{i}", 3, 10.0, run)
        except Exception as e:  # noqa: BLE001
            out[i] = (e, None)

    threads = [threading.Thread(target=one, args=(i, k)) for i, k in enumerate(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return out


def test_concurrent_requests_for_one_book_share_one_solve() -> None:
    c = SolveCoalescer(tolerance=0.25)
    calls = []
    release = threading.Event()

    def run(flight):
        calls.append(flight)
        release.wait(5)  # hold the solve until the other request has joined
        return "book"

    timer = threading.Timer(0.5, release.set)
    timer.start()
    out = _race(c, [_keys("a"), _keys("b", totals=(1.1, 0.25))], run)  # second: other key, close profiles
    assert len(calls) == 1 and sorted(j for _r, j in out) == [False, True]
    assert [r for r, _j in out] == ["book", "book"]
    assert sorted(calls[0].robots) == ["robot0", "robot1"] and not c.in_flight()


def test_other_context_or_far_profiles_solve_separately_and_errors_reach_waiters() -> None:
    c = SolveCoalescer(tolerance=0.25)
    calls = []

    def run(flight):
        calls.append(flight.keys.key)
        return flight.keys.key

    out = _race(c, [_keys("a"), _keys("b", context="other"), _keys("c", totals=(2.0, 0.25))], run)
    assert sorted(calls) == ["a", "b", "c"] and [r for r, _ in out] == ["a", "b", "c"]

    release = threading.Event()

    def failing(_flight):
        release.wait(5)
        raise SolveError("plan-book solve failed: worker exited with status 1")

    threading.Timer(0.5, release.set).start()
    out = _race(c, [_keys("x"), _keys("x")], failing)
    assert all(isinstance(r, SolveError) for r, _ in out) and not c.in_flight()


def test_solves_are_queued_one_at_a_time_and_the_excess_is_refused() -> None:
    c = SolveCoalescer(tolerance=0.0, max_running=1, max_queued=1)
    running, peak, lock = [0], [0], threading.Lock()
    release = threading.Event()

    def run(flight):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        release.wait(5)
        with lock:
            running[0] -= 1
        return flight.keys.key

    threading.Timer(0.5, release.set).start()
    out = _race(c, [_keys("a", context="1"), _keys("b", context="2"), _keys("c", context="3")], run)
    refused = [r for r, _ in out if isinstance(r, SolveRefused)]
    assert len(refused) == 1 and "1 running + 1 queued" in str(refused[0]) and c.refused == 1
    assert sorted(r for r, _ in out if isinstance(r, str)) in (["a", "b"], ["a", "c"], ["b", "c"])
    assert peak[0] == 1 and not c.in_flight()


def test_a_robot_starts_at_most_one_new_solve_per_interval() -> None:
    now = [0.0]
    c = SolveCoalescer(clock=lambda: now[0], min_interval_s=30.0)
    assert c.solve(_keys("a", context="1"), "robot1", 3, 10.0, lambda f: "a") == ("a", False)
    now[0] = 10.0
    with pytest.raises(SolveRefused, match="robot robot1 started one 10 s ago"):
        c.solve(_keys("b", context="2"), "robot1", 3, 10.0, lambda f: "b")
    assert c.solve(_keys("b", context="2"), "robot2", 3, 10.0, lambda f: "b") == ("b", False)  # others may
    now[0] = 31.0
    assert c.solve(_keys("c", context="3"), "robot1", 3, 10.0, lambda f: "c") == ("c", False)


def test_eta_follows_the_buckets_done() -> None:
    now = [100.0]
    c = SolveCoalescer(clock=lambda: now[0])
    seen = []

    def run(flight):
        assert flight.eta_s(100.0) == 10.0  # nothing done: the announced expectation
        flight.progress(1, 3)
        seen.append(flight.eta_s(104.0))  # 4 s per bucket, 2 left
        return 1

    c.solve(_keys("a"), "r", 3, 10.0, run)
    assert seen == [8.0]


@pytest.fixture(scope="module")
def sconet_job(tmp_path_factory: pytest.TempPathFactory):
    rep = load_replica(ModelConfig.from_dict({"name": "sconet", "grid_xzy": [32, 32, 32], "seed": 1}), "cpu")
    robot = profile_graph(rep.graph, [rep.example], repeats=1, sizes=2, step_overhead=False)
    job = {
        "model_id": rep.model_id,
        "weights": None,
        "seed": 1,
        "graph": rep.graph.fingerprint,
        "robot_profile": robot.to_json(),
        "server_profile": robot.scaled(0.25, "server").to_json(),
        "grid": [1.0, 20.0],
        "power": PowerModel().to_dict(),
        "solver": dataclasses.asdict(SolverConfig(maxiter=1, popsize=4, max_seconds=0.5, table_seconds=1.0)),
        "deadline_s": 1.0,
        "cache_dir": str(tmp_path_factory.mktemp("books")),
        "tolerance": 0.0,
    }
    return rep, job


def test_worker_solves_with_progress_and_the_book_parses(sconet_job) -> None:
    rep, job = sconet_job
    progress = []
    text, hit = solve_in_worker(job, lambda done, total, _text: progress.append((done, total)))
    book = PlanBook.from_json(text, rep.graph)
    assert not hit and book.buckets == [1.0, 20.0] and progress[-1] == (2, 2)
    assert list((Path(job["cache_dir"]) / "plan_books").glob("*.json"))  # cached for the next handshake


def test_worker_failure_names_the_cause(sconet_job) -> None:
    _rep, job = sconet_job
    with pytest.raises(SolveError, match="worker captured graph .* the server's is deadbeef"):
        solve_in_worker(dict(job, graph="deadbeef"))
