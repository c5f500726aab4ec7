"""The main demo (`make demo`, scripts/intradp_demo, docs/demo.md): Intra-DP end to end on one machine.

Robot and server each get a roscore: in two network namespaces joined by a tbf-shaped veth link (root; the link
follows a bandwidth trace, and the robot side can be CPU-throttled), or on loopback with two masters on two ports
where namespaces are not allowed (no shaping, no throttle). `roslaunch intradp_ros demo.launch side:=server` runs
the server; `side:=robot` the bridge, the bandwidth monitor, the KAPAO client and the eval_driver, which replays the
bundled camera bag. This module prints one line per frame (latency and breakdown, plan, bandwidth estimate, the
shaped rate), plan switches, and a summary table at the end; it is bounded by a time budget and tears everything
down (also on Ctrl-C).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from intradp_ros.eval.health_table import format_health, missing_nodes
from intradp_ros.eval.nodes import read_json_lines
from intradp_ros.eval.tables import format_table, frame_line, summarize
from intradp_ros.eval.testbed import Testbed, TestbedError

ROBOT = "robot1"


def launch_argv(side: str, **args: Any) -> list[str]:
    """`roslaunch intradp_ros demo.launch side:=<side> name:=value ...` (empty values left out)."""
    argv = ["roslaunch", "--screen", "intradp_ros", "demo.launch", f"side:={side}"]
    argv += [f"{k}:={v}" for k, v in args.items() if v not in (None, "")]
    return argv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackPair:
    """Two masters on 127.0.0.1 (no root needed): the same interface the demo uses from Testbed."""

    def __init__(self) -> None:
        self.ports = {"robot": free_port(), "server": free_port()}
        self.workdir = Path(tempfile.mkdtemp(prefix="intradp-demo-"))
        self.procs: list[subprocess.Popen] = []
        self.replay = None

    def uri(self, side: str) -> str:
        return f"http://127.0.0.1:{self.ports[side]}"

    def env(self, side: str) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("ROS_NAMESPACE", None)
        # unbuffered: the demo reads the nodes' stdout line by line (a pipe would block-buffer Python's output)
        env.update(ROS_MASTER_URI=self.uri(side), ROS_IP="127.0.0.1", ROS_HOSTNAME="127.0.0.1", PYTHONUNBUFFERED="1")
        return env

    def spawn(self, side: str, argv: Sequence[str], **kw: Any) -> subprocess.Popen:
        kw.setdefault("start_new_session", True)
        p = subprocess.Popen(list(argv), env=self.env(side), **kw)
        self.procs.append(p)
        return p

    def start_masters(self, timeout: float = 30.0) -> None:
        import xmlrpc.client

        for side in ("robot", "server"):
            log = open(self.workdir / f"master-{side}.log", "ab")
            self.spawn(
                side,
                ["roscore", "-p", str(self.ports[side])],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            log.close()
        deadline = time.monotonic() + timeout
        for side in ("robot", "server"):
            while True:
                try:
                    if xmlrpc.client.ServerProxy(self.uri(side)).getSystemState("/demo")[0] == 1:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise TestbedError(f"the {side} master on {self.uri(side)} did not come up")
                time.sleep(0.2)

    def describe(self) -> str:
        return (
            f"loopback: robot master {self.uri('robot')}, server master {self.uri('server')} "
            "(no namespaces: not root; no shaping, no robot throttle)"
        )

    def down(self) -> None:
        for p in reversed(self.procs):
            stop_group(p)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LoopbackPair:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.down()


def stop_group(p: subprocess.Popen, grace_s: float = 5.0) -> None:
    """SIGINT (roslaunch shuts its nodes down), then SIGTERM, then SIGKILL to the process group."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if p.poll() is not None:
            break
        try:
            os.killpg(p.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        try:
            p.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            continue


def run_demo(
    model: str = "kapao_s6",
    input_size: str = "256,320",
    mode: str = "intradp",
    frames: int = 20,
    trace: str | None = "outdoor",
    dilation: float = 20.0,
    rate_mbit: float | None = None,
    robot_cpu: float | None = 0.1,
    loopback: bool | None = None,
    pacing: str = "lockstep",
    budget_s: float = 900.0,
    out: TextIO = sys.stdout,
) -> int:
    """Run the demo; returns 0 when frames came back. `loopback=None` picks namespaces when root."""
    from intradp_ros.eval.evaluate import dilate_trace, dilated_grid, link_series, rate_at, trace_path
    from intradp_ros.eval.traces import load_trace, write_trace

    if loopback is None:
        loopback = os.geteuid() != 0
    grid = dilated_grid(dilation, 16)
    samples = dilate_trace(load_trace(trace_path(trace)), dilation) if trace else None
    first_rate = rate_mbit or (samples[0][1] if samples else 90.0 / dilation)
    bed: Any = LoopbackPair() if loopback else Testbed(rate_mbit=first_rate, name="demo")
    records: list[dict[str, Any]] = []
    health: list[dict[str, Any]] | None = None  # the eval_driver's /diagnostics statuses, at the end of the run
    ok = False
    with bed:
        print(f"[demo] {model} at {input_size}, mode {mode}, {frames} frames of the bundled camera bag", file=out)
        if not loopback:
            if robot_cpu:
                _, line = bed.try_slow_robot(robot_cpu)
                print(f"[demo] {line}", file=out)
            if samples and rate_mbit is None:
                print(
                    f"[demo] link follows the {trace} trace with time dilation k={dilation:g} (rates / k, "
                    f"time x k), starting with the first frame",
                    file=out,
                )
            else:
                print(f"[demo] link shaped to {first_rate:g} Mbit/s", file=out)
        bed.start_masters()
        print(bed.describe(), file=out)
        logdir = Path(bed.workdir)
        slog = open(logdir / "server.log", "ab")
        server = bed.spawn(
            "server",
            launch_argv("server", model=model, input_size=input_size, grid=grid),
            stdout=slog,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        slog.close()
        rlog = open(logdir / "robot-stderr.log", "ab")
        from intradp_ros.core.plan_table import default_cache_dir

        robot_cache = default_cache_dir() / (f"robot_cpu{robot_cpu:g}" if robot_cpu and not loopback else "robot")
        robot = bed.spawn(
            "robot",
            launch_argv(
                "robot",
                model=model,
                input_size=input_size,
                mode=mode,
                grid=grid,
                frames=frames,
                pacing=pacing,
                output="json",
                cache_dir=robot_cache,
                peer_master_uri=(bed.uri("server") if loopback else bed.server.master_uri),
            ),
            stdout=subprocess.PIPE,
            stderr=rlog,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        rlog.close()
        print(
            "[demo] server and robot launched; the first run profiles the model and solves the plan book "
            "(cached afterwards)",
            file=out,
            flush=True,
        )
        series: list = []
        ready = False
        try:
            for rec in read_json_lines(robot, timeout=budget_s):
                kind = rec.get("kind")
                if kind == "ready":
                    print(f"[demo] client subscribed; replaying {rec['frames']} frames ({rec['pacing']})", file=out)
                elif kind == "warmup":
                    print(
                        f"[demo] warm-up frame {rec['index']}: "
                        + (f"plan {rec.get('plan_name')}" if rec["received"] else "no result")
                        + ("" if ready else " (waiting for the client's handshake and plan book)"),
                        file=out,
                        flush=True,
                    )
                elif kind == "client_ready":
                    ready = True
                    print(f"[demo] client ready: {rec['log']}", file=out, flush=True)
                elif kind == "warning":
                    print(f"[demo] warning: {rec['warning']}", file=out, flush=True)
                elif kind == "start" and samples and not loopback and rate_mbit is None:
                    trace_file = logdir / "trace_dilated.txt"
                    write_trace(trace_file, samples)
                    bed.replay_trace(trace_file, loop=True)
                    series = link_series(samples, budget_s)
                elif kind == "stats" and int(rec.get("frame", -1)) >= 0:
                    link = rate_at(series, float(rec["t_s"])) if series else (None if loopback else first_rate)
                    records.append(dict(rec, system=mode, trace=trace or "fixed"))
                    print(frame_line(dict(rec, system=mode), dilation if series else 1.0, link), file=out, flush=True)
                elif kind == "lost":
                    print(f"[demo] frame {rec['frame']}: no result in time", file=out, flush=True)
                elif kind == "plan":
                    print(
                        f"[demo] plan switch -> {rec['plan_name']} (estimate {rec['estimate_mbit_per_s']:.2f} Mbit/s)",
                        file=out,
                        flush=True,
                    )
                elif kind == "health":
                    health = list(rec.get("statuses", []))
                elif kind == "error":
                    print(f"[demo] error: {rec['error']}", file=out)
                elif kind == "done":
                    ok = rec.get("results", 0) > 0
        except TestbedError as err:
            print(f"[demo] {err}", file=out)
        if server.poll() is not None:
            print(f"[demo] the server exited early (code {server.returncode}); log {logdir / 'server.log'}", file=out)
        if not ok:
            keep = Path(tempfile.mkdtemp(prefix="intradp-demo-logs-"))
            for f in logdir.glob("*.log"):
                shutil.copy(f, keep)
            print(f"[demo] no results; logs copied to {keep} (and ROS logs in $ROS_HOME/log)", file=out)
    print("\n[demo] summary" + (f" (undilated = measured / {dilation:g})" if series else ""), file=out)
    if records:
        sums = summarize(records)
        print(format_table(sums), file=out)
        if series:
            print("\n" + format_table(sums, time_unit="ms", k=dilation), file=out)
    else:
        print("no frames", file=out)
    return 0 if report_health(health, out) and ok else 1


def report_health(statuses: list[dict[str, Any]] | None, out: TextIO) -> bool:
    """Print the health table; False (said loudly) when the run ended without it or a node never reported."""
    print("\n[demo] node health (latest /diagnostics status of each, seen on the robot's master)", file=out)
    if statuses is None:
        print("[demo] FAILED: the eval_driver ended without a health report (see the lines above)", file=out)
        return False
    print(format_health(statuses), file=out)
    missing = missing_nodes(statuses)
    if missing:
        print(
            f"[demo] FAILED: no /diagnostics status from the {', '.join(missing)} node(s) during the run "
            "(check that the node runs, publishes diagnostics and that the bridge mirrors /diagnostics)",
            file=out,
        )
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of scripts/intradp_demo."""
    import argparse

    p = argparse.ArgumentParser(prog="intradp_demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="kapao_s6", help="kapao_s6 / kapao_m6 / kapao_l6")
    p.add_argument("--input-size", default="256,320", help="model input H,W (multiples of 64)")
    p.add_argument("--mode", default="intradp", help="intradp, device_only, server_only, dsccs, spso_ga")
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--trace", default="outdoor", help="bandwidth trace (indoor, outdoor or a file); '' for none")
    p.add_argument("--dilation", type=float, default=20.0, help="time-dilation factor k for the trace")
    p.add_argument("--rate", type=float, default=None, help="fixed link rate in Mbit/s instead of the trace")
    p.add_argument("--robot-cpu", type=float, default=0.1, help="robot cgroup quota (share of one CPU); 0: none")
    p.add_argument("--loopback", action="store_true", help="two masters on loopback even when root")
    p.add_argument("--pacing", default="lockstep", choices=("lockstep", "rate"))
    p.add_argument("--budget", type=float, default=900.0, help="seconds the whole demo may take")
    args = p.parse_args(argv)
    try:
        return run_demo(
            args.model,
            args.input_size,
            args.mode,
            args.frames,
            args.trace or None,
            args.dilation,
            args.rate,
            args.robot_cpu or None,
            True if args.loopback else None,
            args.pacing,
            args.budget,
        )
    except (TestbedError, ValueError, OSError) as err:
        print(f"intradp_demo: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("intradp_demo: interrupted; everything was torn down", file=sys.stderr)
        return 130
