"""Command line over the Testbed (scripts/intradp_testbed).

    intradp_testbed [--rate 90] [--trace FILE] [--robot-cpu 0.25] [--no-masters] -- robot|server CMD...
    intradp_testbed [options] shell        interactive: 'robot CMD', 'server CMD', 'bg robot CMD', 'rate X',
                                           'info', 'exit'
    intradp_testbed cleanup                remove namespaces/cgroups left by testbeds whose process died

It prints the addresses, master URIs and measured slow-down, runs the command (or the shell), and tears the
testbed down on exit, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from collections.abc import Sequence
from typing import TextIO

from intradp_ros.eval.testbed import SIDES, Testbed, TestbedError, cleanup_stale
from intradp_ros.eval.traces import TraceError, load_trace

SHELL_HELP = """commands:
  robot CMD...      run CMD in the robot namespace (ROS_MASTER_URI/ROS_IP set), wait for it
  server CMD...     same on the server side
  bg robot|server CMD...   start CMD in the background (stopped at exit)
  rate MBIT         change the link rate now (both directions)
  info              addresses, URIs, rate
  exit | quit       tear down and leave (also Ctrl-D)"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="intradp_testbed",
        description="robot/server network namespaces with a shaped veth link and a roscore each (root)",
        epilog="examples: intradp_testbed -- robot rostopic list\n"
        "          intradp_testbed --trace config/traces/outdoor.txt shell",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--rate", type=float, default=90.0, help="link rate in Mbit/s each way (default 90)")
    p.add_argument("--trace", help="replay this bandwidth trace (t_seconds rate_mbit per line)")
    p.add_argument("--trace-speed", type=float, default=1.0, help="trace replay speed factor (default 1)")
    p.add_argument("--no-loop", action="store_true", help="play the trace once instead of looping")
    p.add_argument("--robot-cpu", type=float, help="cgroup cpu quota of robot processes, share of one CPU (e.g. 0.25)")
    p.add_argument("--no-masters", action="store_true", help="do not start a roscore on each side")
    p.add_argument("--name", default="idp", help="testbed name (part of namespace names, default idp)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="'shell', 'cleanup', or [--] robot|server CMD...")
    return p


def parse_command(words: Sequence[str]) -> list[str]:
    """Normalise the trailing words: drop a leading '--'; ValueError for anything that is not a known form."""
    words = list(words)
    if words and words[0] == "--":
        words = words[1:]
    if not words:
        raise ValueError("nothing to do: give 'shell', 'cleanup' or 'robot|server CMD...'")
    if words[0] in ("shell", "cleanup"):
        if len(words) != 1:
            raise ValueError(f"'{words[0]}' takes no further arguments")
        return words
    if words[0] not in SIDES:
        raise ValueError(f"expected 'robot' or 'server' before the command, got {words[0]!r}")
    if len(words) < 2:
        raise ValueError(f"missing the command to run on the {words[0]} side")
    return words


def run_shell(tb: Testbed, inp: TextIO = sys.stdin, out: TextIO = sys.stdout) -> int:
    """The interactive mode: one command per line until exit/EOF."""
    print(SHELL_HELP, file=out)
    while True:
        out.write("testbed> ")
        out.flush()
        line = inp.readline()
        if not line:
            print(file=out)
            return 0
        try:
            words = shlex.split(line)
        except ValueError as err:
            print(f"cannot parse: {err}", file=out)
            continue
        if not words:
            continue
        cmd = words[0]
        try:
            if cmd in ("exit", "quit"):
                return 0
            if cmd == "info":
                print(tb.describe(), file=out)
            elif cmd == "rate" and len(words) == 2:
                if tb.replay is not None and tb.replay.is_alive():
                    tb.replay.stop()
                    print("trace replay stopped", file=out)
                tb.set_rate(float(words[1]))
                print(f"rate now {tb.rate_mbit:g} Mbit/s", file=out)
            elif cmd in SIDES and len(words) > 1:
                res = tb.run(
                    cmd,
                    ["bash", "-c", " ".join(shlex.quote(w) for w in words[1:])],
                    timeout=3600,
                    stdout=None,
                    stderr=None,
                    stdin=subprocess.DEVNULL,
                )
                print(f"[exit {res.returncode}]", file=out)
            elif cmd == "bg" and len(words) > 2 and words[1] in SIDES:
                p = tb.spawn(words[1], words[2:], stdin=subprocess.DEVNULL)
                print(f"started pid {p.pid} on the {words[1]} side", file=out)
            else:
                print(SHELL_HELP, file=out)
        except (TestbedError, ValueError, OSError, subprocess.TimeoutExpired) as err:
            print(f"error: {err}", file=out)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        words = parse_command(args.command)
        if words[0] == "cleanup":
            removed = cleanup_stale()
            print("\n".join(removed) if removed else "nothing stale found")
            return 0
        if args.trace:
            load_trace(args.trace)  # fail before building anything
        with Testbed(rate_mbit=args.rate, name=args.name) as tb:
            print(tb.describe())
            if args.robot_cpu is not None:
                print("  " + tb.try_slow_robot(args.robot_cpu)[1])
            if not args.no_masters:
                tb.start_masters()
                print("  masters up: export ROS_MASTER_URI=... as above inside each side")
            if args.trace:
                tb.replay_trace(args.trace, speed=args.trace_speed, loop=not args.no_loop)
                print(f"  replaying {args.trace} at x{args.trace_speed:g}{'' if args.no_loop else ', looped'}")
            sys.stdout.flush()
            if words[0] == "shell":
                return run_shell(tb)
            res = tb.run(words[0], words[1:], timeout=10**7, stdout=None, stderr=None, stdin=None)
            return res.returncode
    except (TestbedError, TraceError, ValueError) as err:
        print(f"intradp_testbed: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nintradp_testbed: interrupted, torn down", file=sys.stderr)
        return 130
