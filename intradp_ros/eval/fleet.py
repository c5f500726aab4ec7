"""N robots on one server inside the testbed, for the scale and soak runs.

Reuses the system rostests' harness (test/integration/system_testlib.py: the server, one KAPAO-S client and one
frame feeder per robot in the robot namespace, and the local-inference reference the published results are
compared with), so the runs measure exactly what the system tests check. Needs a source checkout (the harness is
not installed) and root (namespaces, qdiscs). Everything started is removed when the run ends, whatever happens.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from intradp_ros.eval.soak_report import (
    ProcSample,
    mem_available_mb,
    memory_needed_mb,
    python_pid,
    read_proc_status,
)
from intradp_ros.eval.sysexec import TestbedError

INTEGRATION_DIR = Path(__file__).resolve().parents[2] / "test" / "integration"
FRAMES = 8  # distinct camera frames each feeder cycles through (the reference computes each once)
LOW_MEMORY_MB = 700.0  # the run stops (and tears everything down) when the host's MemAvailable falls below this


def run_cli(tool: str, main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """`main(argv)` with the testbed's errors (no root, not enough memory, a robot that never ran distributed) as
    one line naming `tool`, exit status 2: the fleet tools' entry point."""
    try:
        return main(argv)
    except TestbedError as err:
        print(f"{tool}: {err}", file=sys.stderr)
        return 2


def check_host_memory() -> None:
    """Stop the run before the kernel's OOM killer picks a process (often another job's, the largest)."""
    have = mem_available_mb()
    if have < LOW_MEMORY_MB:
        raise TestbedError(
            f"the host's available memory fell to {have:.0f} MB (other jobs and this run): stopped to spare them"
        )


def testlib() -> Any:
    """The system rostests' harness module (a clear error outside a source checkout)."""
    if not (INTEGRATION_DIR / "system_testlib.py").is_file():
        raise TestbedError(f"the system test harness is not at {INTEGRATION_DIR}: run from a source checkout")
    if str(INTEGRATION_DIR) not in sys.path:
        sys.path.insert(0, str(INTEGRATION_DIR))
    import system_testlib

    return system_testlib


@dataclass
class FleetConfig:
    """What one fleet run does: `robots` clients at `rate_hz` each for `duration_s` after all ran distributed."""

    robots: int
    duration_s: float
    rate_hz: float = 1.0
    deadline_s: float = 3.0
    rate_mbit: float = 400.0
    trace: str = ""  # a bandwidth trace file replayed (looped) from the start of the measured window
    sample_every_s: float = 5.0
    key_file: str = ""
    tag: str = "fleet"
    ready_timeout_s: float = 900.0
    server_extra: Sequence[str] = ()


@dataclass
class FleetRun:
    """What a run collected: per robot the feeder's JSON lines, the window, process samples, the server log."""

    cfg: FleetConfig
    robots: list[str]
    window: tuple[float, float] = (0.0, 0.0)
    lines: dict[str, Any] = field(default_factory=dict)
    samples: dict[str, list[ProcSample]] = field(default_factory=dict)
    server_log: str = ""
    logdir: Path | None = None
    rate_changes: int = 0
    rate_samples_skipped: int = 0  # trace samples passed over because the replay was behind


class Sampler(threading.Thread):
    """Reads RSS and thread count of named processes every `every_s` until stopped (bounded by `limit_s`)."""

    def __init__(self, pids: dict[str, int], every_s: float, limit_s: float) -> None:
        super().__init__(name="proc-sampler", daemon=True)
        self.pids = {name: python_pid(pid) or pid for name, pid in pids.items()}
        self.every_s = every_s
        self.limit_s = limit_s
        self.samples: dict[str, list[ProcSample]] = {name: [] for name in pids}
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        end = time.monotonic() + self.limit_s
        while time.monotonic() < end:
            for name, pid in self.pids.items():
                s = read_proc_status(pid)
                if s is not None:
                    self.samples[name].append(s)
            if self._stop_event.wait(self.every_s):
                return


def run_fleet(cfg: FleetConfig, say: Callable[[str], None] = print) -> FleetRun:
    """Start the testbed, server, clients and feeders; wait until every robot ran a frame split with the server;
    then feed for `duration_s` (sampling the processes, replaying the trace) and collect everything."""
    lib = testlib()
    need, have = memory_needed_mb(cfg.robots), mem_available_mb()
    if have < need:  # before anything starts: the kernel's OOM killer would pick some other job's process
        raise TestbedError(
            f"{cfg.robots} robot(s) and a server need about {need / 1024:.1f} GB; the host has "
            f"{have / 1024:.1f} GB available (other jobs): try again later or with fewer robots"
        )
    robots = [f"robot{i + 1}" for i in range(cfg.robots)]
    run = FleetRun(cfg, robots)
    system = lib.System(cfg.tag, rate_mbit=cfg.rate_mbit).up()
    try:
        run.logdir = system.logdir
        key = ["--key-file", cfg.key_file] if cfg.key_file else []
        server = system.start_server(
            [lib.KAPAO],
            robots,
            [*key, "--max-queued-solves", str(max(4, cfg.robots)), *cfg.server_extra],
        )
        clients = {}
        for robot in robots:
            clients[robot] = system.start_client("kapao", robot, lib.KAPAO, ["--deadline", str(cfg.deadline_s), *key])
        say(f"[fleet] {cfg.robots} robot(s) starting (logs in {system.logdir})")
        # every feeder warms up (1 Hz frames until one ran split), then feeds at rate_hz; the window starts when
        # the last one is warm, so all robots load the server together inside it
        total = cfg.ready_timeout_s + cfg.duration_s
        for robot in robots:
            run.lines[robot] = system.start_feeder(
                "kapao",
                robot,
                [
                    "--frames",
                    str(FRAMES),
                    "--rate",
                    str(cfg.rate_hz),
                    "--duration",
                    str(total),
                    "--warm-until-distributed",
                    "--wait-ready",
                    str(cfg.ready_timeout_s),
                ],
            )
        pids = {"server": server.pid, **{f"client_{r}": p.pid for r, p in clients.items()}}
        sampler = Sampler(pids, cfg.sample_every_s, total + 60)
        sampler.start()
        deadline = time.monotonic() + cfg.ready_timeout_s + 30
        while time.monotonic() < deadline:
            warm = [r for r in robots if run.lines[r].of("warm")]
            if len(warm) == len(robots):
                break
            check_host_memory()
            time.sleep(1.0)
        cold = [r for r in robots if not any(w["distributed"] for w in run.lines[r].of("warm"))]
        if cold:
            raise TestbedError(f"never ran distributed within {cfg.ready_timeout_s:.0f} s: {', '.join(cold)}")
        t0 = time.time() + 2.0
        say(f"[fleet] all {cfg.robots} robot(s) ran distributed; measuring {cfg.duration_s:.0f} s")
        if cfg.trace:
            system.tb.replay_trace(cfg.trace, loop=True)
        end = time.monotonic() + 2.0 + cfg.duration_s
        next_say = time.monotonic() + 60
        while time.monotonic() < end:
            time.sleep(min(5.0, max(0.0, end - time.monotonic())))
            check_host_memory()
            if time.monotonic() >= next_say:
                next_say += 60
                done = sum(len(run.lines[r].of("result")) for r in robots)
                say(f"[fleet] {(time.time() - t0) / 60:5.1f} min: {done} results so far")
        run.window = (t0, time.time())
        replay = system.tb.replay
        run.rate_changes = replay.changes if replay is not None else 0
        run.rate_samples_skipped = replay.skipped if replay is not None else 0
        time.sleep(cfg.deadline_s + 1.0)  # the last frames' results and stats
        sampler.stop()
        sampler.join(timeout=10)
        run.samples = sampler.samples
        run.server_log = (system.logdir / "server.log").read_text(errors="replace")
        return run
    finally:
        system.down()


def wrong_results(run: FleetRun) -> dict[str, list[str]]:
    """Per robot, why each published result in the window differs from local inference on the same frame."""
    lib = testlib()
    ref = lib.LocalReference("kapao", lib.KAPAO, FRAMES)
    t0, t1 = run.window
    out: dict[str, list[str]] = {}
    for robot in run.robots:
        sent = {r["frame"] for r in run.lines[robot].of("sent") if t0 <= float(r["t"]) <= t1}
        bad = []
        for res in run.lines[robot].of("result"):
            if res["frame"] not in sent:
                continue
            why = lib.compare_kapao(ref.result(lib.frame_index(res["frame"]))[0], res)
            if why:
                bad.append(f"{res['frame']}: {why}")
        out[robot] = bad
    return out
