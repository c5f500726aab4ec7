"""Plan-book solves off the server's process, one at a time per key, with progress.

In models/ because the worker rebuilds the replica's graph from the model id (models.replica); ROS-free so the
child process starts without a master.

A first solve takes minutes (measured 72 s for KAPAO-S on 25 buckets). Run in the server's own process it held
the GIL, so the node's XML-RPC API stopped answering (the bridge's getBusInfo calls timed out), and a client's
retry started a second, concurrent solve of the same book. Here:
- `solve_in_worker` runs the solve in a child process (`python -m intradp_ros.models.plan_book_worker`): plain
  JSON in on stdin (model id, weights path, seed, both profiles, grid, power model, solver settings, codec
  policy), JSON lines out on stdout (progress per bucket, then the book). Nothing is pickled; the child rebuilds
  the graph from the model id and checks its fingerprint.
- `SolveCoalescer` makes a second request for the same book (the same exact key, or the same context with
  profiles within the reuse tolerance) wait for the solve in flight instead of starting another, and lists the
  solves in flight (with their progress) for diagnostics. It also bounds the work handshakes can cause: at most
  `max_running` solves run at once (the others wait in a queue of at most `max_queued`), and a robot may start a
  new solve at most once per `min_interval_s`; a request beyond these is refused at once (`SolveRefused`, the
  client retries later) instead of piling up worker processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from intradp_ros.core.plan_book import BookKeys, profiles_close

T = TypeVar("T")
Progress = Callable[[int, int, str], None]


class SolveError(RuntimeError):
    """The worker failed; the message names the cause (its error line or the end of its stderr)."""


class SolveRefused(RuntimeError):
    """A new solve was not started: the queue is full or the robot asked for another too soon."""


# ------------------------------------------------------------------------------------------------ worker side
def _solve(job: dict[str, Any], emit: Callable[[dict[str, Any]], None]) -> None:
    from intradp_ros.core.plan_book import build_plan_book
    from intradp_ros.core.power import PowerModel
    from intradp_ros.core.profiler import Profile
    from intradp_ros.core.session import ModelConfig
    from intradp_ros.core.solver import SolverConfig
    from intradp_ros.models.replica import load_replica

    cfg = ModelConfig.from_model_id(str(job["model_id"]), job.get("weights") or None, int(job.get("seed", 0)))
    g = load_replica(cfg, "cpu").graph
    if g.fingerprint != job["graph"]:
        raise SolveError(f"worker captured graph {g.fingerprint}, the server's is {job['graph']}")
    robot = Profile.from_json(job["robot_profile"], g)
    server = Profile.from_json(job["server_profile"], g)
    emit({"kind": "started", "buckets": len(job["grid"])})

    def progress(done: int, total: int, text: str) -> None:
        emit({"kind": "progress", "done": done, "total": total, "text": text})

    book, hit = build_plan_book(
        g,
        robot,
        server,
        [float(b) for b in job["grid"]],
        PowerModel.from_dict(job["power"]),
        SolverConfig(**job["solver"]),
        float(job["deadline_s"]),
        job["cache_dir"],
        float(job.get("tolerance", 0.0)),
        progress,
        str(job.get("codecs", "intradp")),
    )
    emit({"kind": "done", "hit": hit, "book": book.to_json()})


def worker_main() -> int:
    """Child entry point: one JSON job on stdin, JSON lines on stdout."""

    def emit(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    try:
        _solve(json.loads(sys.stdin.read()), emit)
    except Exception as e:  # noqa: BLE001 - every failure goes back to the server as a message
        emit({"kind": "error", "error": f"{type(e).__name__}: {e}"})
        return 1
    return 0


# ------------------------------------------------------------------------------------------------ server side
def solve_in_worker(job: dict[str, Any], progress: Progress | None = None) -> tuple[str, bool]:
    """(book JSON, came from the cache) solved by a child process; SolveError with the cause on failure."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "intradp_ros.models.plan_book_worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    tail: deque[str] = deque(maxlen=20)
    drain = threading.Thread(target=lambda: tail.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
    drain.start()
    result: tuple[str, bool] | None = None
    error = ""
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(job))
        proc.stdin.close()
        for line in proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            kind = msg.get("kind")
            if kind == "progress" and progress is not None:
                progress(int(msg["done"]), int(msg["total"]), str(msg.get("text", "")))
            elif kind == "done":
                result = (str(msg["book"]), bool(msg["hit"]))
            elif kind == "error":
                error = str(msg["error"])
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        drain.join(2.0)
    if result is not None:
        return result
    if not error:
        error = f"worker exited with status {proc.returncode}: {' | '.join(t.strip() for t in tail)[-600:]}"
    raise SolveError(f"plan-book solve failed: {error}")


@dataclass
class Flight:
    """One solve in flight: who asked, when it started, how far it is; waiters get its result or its error."""

    keys: BookKeys
    robots: list[str]
    started: float
    expected_s: float
    buckets: int
    done_buckets: int = 0
    result: Any = None
    error: BaseException | None = None
    finished: threading.Event = field(default_factory=threading.Event)

    def progress(self, done: int, total: int, _text: str = "") -> None:
        self.done_buckets, self.buckets = done, total

    def eta_s(self, now: float) -> float:
        """Seconds left: from the buckets done so far, else the announced expectation."""
        elapsed = now - self.started
        if self.done_buckets:
            return elapsed / self.done_buckets * (self.buckets - self.done_buckets)
        return max(0.0, self.expected_s - elapsed)


class SolveCoalescer:
    """At most one solve per book: a second request within tolerance of one in flight waits for it."""

    def __init__(
        self,
        tolerance: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        max_running: int = 1,
        max_queued: int = 4,
        min_interval_s: float = 0.0,
    ) -> None:
        self.tolerance = tolerance
        self.clock = clock
        self.max_running = max(1, int(max_running))
        self.max_queued = max(0, int(max_queued))
        self.min_interval_s = float(min_interval_s)
        self.refused = 0
        self._lock = threading.Lock()
        self._flights: list[Flight] = []
        self._slots = threading.Semaphore(self.max_running)
        self._last_start: dict[str, float] = {}  # robot -> when it last started a new solve

    def _match(self, keys: BookKeys) -> Flight | None:
        for f in self._flights:
            if f.keys.key == keys.key or (
                f.keys.context == keys.context and profiles_close(f.keys.totals, keys.totals, self.tolerance)
            ):
                return f
        return None

    def solve(
        self, keys: BookKeys, robot: str, buckets: int, expected_s: float, run: Callable[[Flight], T]
    ) -> tuple[T, bool]:
        """(result, True if it joined a solve already in flight). `run(flight)` does the work once, after waiting
        for a free slot; SolveRefused when a new solve may not start now."""
        with self._lock:
            flight = self._match(keys)
            joined = flight is not None
            if flight is None:
                self._admit(robot)
                flight = Flight(keys, [robot], self.clock(), expected_s, buckets)
                self._flights.append(flight)
                self._last_start[robot] = self.clock()
            elif robot not in flight.robots:
                flight.robots.append(robot)
        if joined:
            flight.finished.wait()
            if flight.error is not None:
                raise flight.error
            return flight.result, True
        try:
            with self._slots:  # the queue: at most max_running solves at once
                flight.started = self.clock()
                flight.result = run(flight)
            return flight.result, False
        except BaseException as e:
            flight.error = e
            raise
        finally:
            with self._lock:
                self._flights.remove(flight)
            flight.finished.set()

    def _admit(self, robot: str) -> None:
        """Raise SolveRefused (counted) unless `robot` may start a new solve now (call under the lock)."""
        now = self.clock()
        last = self._last_start.get(robot)
        if last is not None and now - last < self.min_interval_s:
            self.refused += 1
            raise SolveRefused(
                f"plan-book solve refused: robot {robot} started one {now - last:.0f} s ago (at most one per "
                f"{self.min_interval_s:g} s); retry later"
            )
        if len(self._flights) >= self.max_running + self.max_queued:
            self.refused += 1
            raise SolveRefused(
                f"plan-book solve refused: {len(self._flights)} solves running or queued (limit "
                f"{self.max_running} running + {self.max_queued} queued); retry later"
            )

    def in_flight(self) -> list[Flight]:
        with self._lock:
            return list(self._flights)


if __name__ == "__main__":
    sys.exit(worker_main())
