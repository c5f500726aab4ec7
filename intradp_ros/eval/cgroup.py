"""Robot slow-down by a cgroup v1 cpu quota: a real throttle, so robot/server compute ratios are set, not faked."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from intradp_ros.eval.sysexec import TestbedError

CPU_ROOT = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 100_000

# Timed busy loop used to measure the slow-down: pure-Python work, a fixed number of iterations.
_BUSY = ("import time\nt=time.perf_counter()\nc=time.process_time()\nn=0\nwhile n<{iters}:\n    n+=1\n"
         "print(time.perf_counter()-t, time.process_time()-c)\n")


def validate_cpu_fraction(cpu_fraction: float) -> float:
    """Fraction of one CPU the robot may use: 0 < f <= number of CPUs; ValueError otherwise."""
    try:
        f = float(cpu_fraction)
    except (TypeError, ValueError):
        raise ValueError(f"cpu_fraction must be a number, got {cpu_fraction!r}") from None
    ncpu = os.cpu_count() or 1
    if not (0.0 < f <= ncpu):
        raise ValueError(f"cpu_fraction must be in (0, {ncpu}] (share of one CPU), got {cpu_fraction!r}")
    return f


class CpuGroup:
    """One cgroup v1 cpu group with a cfs quota; processes join it through `wrap()` before they exec."""

    def __init__(self, name: str) -> None:
        self.path = CPU_ROOT / name
        self.fraction: Optional[float] = None

    def create(self, cpu_fraction: float) -> None:
        """Make the group (or update its quota) so members get `cpu_fraction` of one CPU."""
        f = validate_cpu_fraction(cpu_fraction)
        if not (CPU_ROOT / "cpu.cfs_quota_us").exists():
            raise TestbedError(f"cgroup v1 cpu controller not found at {CPU_ROOT}: cannot slow the robot down")
        try:
            self.path.mkdir(exist_ok=True)
            (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(max(1000, int(f * PERIOD_US))))
        except OSError as exc:
            raise TestbedError(f"cannot configure cgroup {self.path}: {exc}") from None
        self.fraction = f

    @property
    def exists(self) -> bool:
        return self.path.is_dir()

    def wrap(self, argv: Sequence[str]) -> List[str]:
        """argv that first moves itself into the group, then execs `argv` (same pid, so tracking works)."""
        procs = str(self.path / "cgroup.procs")
        return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', procs, *argv]

    def pids(self) -> List[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def remove(self, grace_s: float = 2.0) -> None:
        """Kill leftover members and remove the group; quiet if already gone."""
        if not self.exists:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + grace_s
            while self.pids() and time.monotonic() < deadline:
                time.sleep(0.05)
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.05)
        raise TestbedError(f"could not remove cgroup {self.path} (members: {self.pids()})")


def _time_busy_loop(argv_prefix: Sequence[str], iters: int) -> Tuple[float, float]:
    """(wall seconds, cpu seconds) of the busy loop run as a fresh process behind `argv_prefix`."""
    code = _BUSY.format(iters=iters)
    out = subprocess.run([*argv_prefix, sys.executable, "-c", code], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, timeout=120, check=False)
    if out.returncode != 0:
        raise TestbedError(f"slow-down measurement failed: {out.stderr.strip()}")
    wall, cpu = (float(x) for x in out.stdout.split())
    return wall, cpu


def measure_slowdown(group: CpuGroup, target_s: float = 0.4, repeats: int = 2) -> float:
    """Slow-down of robot processes relative to one unthrottled CPU.

    Wall time of a busy loop inside the group divided by the CPU time the same loop needs outside (best of
    `repeats`). CPU time is the reference because other load on the host stretches the outside wall time
    and would make the factor look smaller; the inside wall time includes everything the robot suffers.
    The loop takes about `target_s` outside, so inside it spans many cfs periods.
    """
    iters = 200_000
    _, t = _time_busy_loop([], iters)
    iters = max(iters, int(iters * target_s / max(t, 1e-3)))
    outside = min(_time_busy_loop([], iters)[1] for _ in range(repeats))
    inside, _ = _time_busy_loop(group.wrap([]), iters)
    return inside / outside
