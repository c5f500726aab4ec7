"""Robot slow-down by a cgroup cpu quota: a real throttle, so robot/server compute ratios are set, not faked.

Both cgroup layouts are supported, found under one root (a parameter, so tests use fake trees in a temp dir):

- v2 (unified; stock Debian 12): `<root>/cgroup.controllers` lists `cpu` (also tried at `<root>/unified`, the
  mixed layout's mount). The group gets `cpu.max` = "quota period"; the parent must delegate the controller,
  so `+cpu` is written to its `cgroup.subtree_control` when missing.
- v1 (legacy or mixed layout): `<root>/cpu` (or `<root>/cpu,cpuacct`) holds `cpu.cfs_quota_us`; the group gets
  `cpu.cfs_period_us` and `cpu.cfs_quota_us`.

v2 is preferred when its cpu controller is there. `find_cpu_controller` says why neither is usable, so callers
can run unthrottled and say so instead of failing.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from intradp_ros.eval.sysexec import TestbedError

CGROUP_ROOT = Path("/sys/fs/cgroup")
CPU_ROOT = CGROUP_ROOT / "cpu"  # the v1 cpu hierarchy of the default root (kept for callers that print it)
# CFS period. The quota is spent in bursts: with 100 ms periods at 0.1 CPU the robot runs 10 ms at full speed,
# then stops for 90 ms, so anything shorter than 10 ms (one operator) usually runs unthrottled. 10 ms periods
# (1 ms quota at 0.1 CPU) keep bursts at the scale of one operator; see docs/testbed.md for measurements.
PERIOD_US = 100_000
MIN_QUOTA_US = 1000  # kernel minimum of the cfs quota (v1 cpu.cfs_quota_us, v2 cpu.max) and period
MAX_PERIOD_US = 1_000_000


class ThrottleUnavailable(TestbedError):
    """No usable cgroup cpu controller: the robot cannot be slowed down on this host (the reason says why)."""


# Timed busy loop used to measure the slow-down: pure-Python work, a fixed number of iterations.
_BUSY = (
    "import time\nt=time.perf_counter()\nc=time.process_time()\nn=0\nwhile n<{iters}:\n    n+=1\n"
    "print(time.perf_counter()-t, time.process_time()-c)\n"
)


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


def quota_and_period(cpu_fraction: float, period_us: int = PERIOD_US) -> tuple[int, int]:
    """(quota_us, period_us) giving `cpu_fraction` of one CPU: the period is `period_us`, lengthened where
    needed so the quota is at least the kernel's 1 ms (e.g. 0.05 CPU needs periods of at least 20 ms)."""
    f = validate_cpu_fraction(cpu_fraction)
    p = int(period_us)
    if not MIN_QUOTA_US <= p <= MAX_PERIOD_US:
        raise ValueError(f"period_us must be in [{MIN_QUOTA_US}, {MAX_PERIOD_US}], got {period_us!r}")
    p = max(p, math.ceil(MIN_QUOTA_US / f))
    if p > MAX_PERIOD_US:
        raise ValueError(f"cpu_fraction {f:g} needs a period over {MAX_PERIOD_US} us")
    return max(MIN_QUOTA_US, int(round(f * p))), p


@dataclass(frozen=True)
class CpuController:
    """Where cpu groups are made (`parent`) and which interface files set their quota (`version` 1 or 2)."""

    version: int
    parent: Path

    def describe(self) -> str:
        return f"cgroup v{self.version} cpu controller at {self.parent}"

    def prepare(self) -> None:
        """v2: delegate the cpu controller to the parent's children (`+cpu` in its cgroup.subtree_control)."""
        if self.version != 2:
            return
        control = self.parent / "cgroup.subtree_control"
        try:
            if "cpu" in control.read_text().split():
                return
            control.write_text("+cpu")
        except OSError as exc:
            raise ThrottleUnavailable(
                f"cannot enable +cpu in {control}: {exc} (a v2 group with processes of its own cannot delegate "
                f"controllers: run from a parent without member processes)"
            ) from None

    def write_limit(self, group: Path, quota_us: int, period_us: int) -> None:
        """Give `group` `quota_us` of CPU time per `period_us`."""
        if self.version == 2:
            (group / "cpu.max").write_text(f"{quota_us} {period_us}")
            return
        # lift the quota first: a new period below the old quota would be refused (quota > period is fine)
        (group / "cpu.cfs_quota_us").write_text("-1")
        (group / "cpu.cfs_period_us").write_text(str(period_us))
        (group / "cpu.cfs_quota_us").write_text(str(quota_us))


def _writable_dir(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK)


def find_cpu_controller(root: Path = CGROUP_ROOT) -> tuple[CpuController | None, str]:
    """(controller, "") for the first usable layout under `root` (v2, then v1), else (None, why not)."""
    root = Path(root)
    notes = []
    for unified in (root, root / "unified"):
        controllers = unified / "cgroup.controllers"
        if not controllers.is_file():
            continue
        try:
            available = controllers.read_text().split()
        except OSError as exc:
            notes.append(f"cannot read {controllers}: {exc}")
            continue
        if "cpu" not in available:
            notes.append(f"v2 at {unified} has no cpu controller (controllers: {' '.join(available) or 'none'})")
        elif not _writable_dir(unified):
            notes.append(f"v2 at {unified} is not writable (root needed)")
        else:
            return CpuController(2, unified), ""
    for name in ("cpu", "cpu,cpuacct"):
        v1 = root / name
        if (v1 / "cpu.cfs_quota_us").is_file():
            if _writable_dir(v1):
                return CpuController(1, v1), ""
            notes.append(f"v1 at {v1} is not writable (root needed)")
            break
    else:
        notes.append(f"no v1 cpu hierarchy at {root / 'cpu'}")
    return None, "no usable cgroup cpu controller: " + "; ".join(notes)


class CpuGroup:
    """One cpu cgroup (v1 or v2) with a cfs quota; processes join it through `wrap()` before they exec.

    The controller is looked up under `root` when the group is made; `ThrottleUnavailable` (a TestbedError)
    says why when there is none.
    """

    def __init__(
        self,
        name: str,
        period_us: int = PERIOD_US,
        root: Path = CGROUP_ROOT,
        controller: CpuController | None = None,
    ) -> None:
        self.name = name
        self.root = Path(root)
        self.period_us = int(period_us)
        self.fraction: float | None = None
        self.quota_us: int | None = None
        self.controller = controller
        self.unavailable = ""
        if self.controller is None:
            self.controller, self.unavailable = find_cpu_controller(self.root)

    @property
    def path(self) -> Path:
        """The group's directory (under the v1 cpu hierarchy of `root` when no controller was found)."""
        parent = self.controller.parent if self.controller is not None else self.root / "cpu"
        return parent / self.name

    def create(self, cpu_fraction: float) -> None:
        """Make the group (or update its quota) so members get `cpu_fraction` of one CPU in periods of
        `self.period_us` (lengthened if the quota would be under 1 ms; the period used is stored back)."""
        quota, period = quota_and_period(cpu_fraction, self.period_us)
        f = validate_cpu_fraction(cpu_fraction)
        if self.controller is None:
            raise ThrottleUnavailable(f"cannot slow the robot down: {self.unavailable}")
        self.controller.prepare()
        try:
            self.path.mkdir(exist_ok=True)
            self.controller.write_limit(self.path, quota, period)
        except OSError as exc:
            raise TestbedError(f"cannot configure cgroup {self.path}: {exc}") from None
        self.fraction, self.quota_us, self.period_us = f, quota, period

    @property
    def exists(self) -> bool:
        return self.path.is_dir()

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """argv that first moves itself into the group, then execs `argv` (same pid, so tracking works)."""
        procs = str(self.path / "cgroup.procs")
        return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', procs, *argv]

    def pids(self) -> list[int]:
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


def _time_busy_loop(argv_prefix: Sequence[str], iters: int) -> tuple[float, float]:
    """(wall seconds, cpu seconds) of the busy loop run as a fresh process behind `argv_prefix`."""
    code = _BUSY.format(iters=iters)
    out = subprocess.run(
        [*argv_prefix, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
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
