#!/usr/bin/env python3
"""rostest for the multi-master bridge: two roscores in the Testbed's robot and server namespaces.

The bridge runs on the robot side. Checked: a robot topic reaches a server subscriber and comes back through a
server echo node; a server service is callable from the robot; a vanished publisher's mirror is removed; the
bridge cleans up on SIGINT and a restarted bridge (also after SIGKILL) re-syncs; after a master restart on either
side the registrations are back and data flows within 2 s of the master answering again; a publisher torn down and
advertised again by the same process (same node URI, faster than the bridge polls) reaches the remote subscriber
again within 2 s.
Needs root (network namespaces); skipped with that reason otherwise. Every wait is bounded.
"""

import json
import os
import subprocess
import sys
import threading
import time
import unittest
from collections.abc import Callable
from pathlib import Path

import rostest

PKG = "intradp_ros"
HERE = Path(__file__).resolve().parent
NODES = str(HERE / "bridge_nodes.py")
BRIDGE = str(HERE.parents[1] / "scripts" / "master_bridge")
PY = sys.executable
PREFIX = "/intradp_bridge_"
UP, DOWN, EXTRA, PROBE = "/intradp/bt/up", "/intradp/bt/down", "/intradp/bt/extra", "/intradp/bt/probe"
READV = "/intradp/bt/readv"
RESYNC_S = 2.0  # the bridge's promise after a master comes back
REATTACH_S = 2.0  # the bridge's promise after a publisher is advertised again at the same node URI
CYCLES = 4  # tear-down/re-advertise cycles (the bridge would see the gap in some by chance)
HOLD_MSGS = 10  # messages (0.5 s at 20 Hz) each new publisher delivers before the next cycle
STARTUP_S = 20.0  # bound for a rospy node to start on a busy 2-core machine


class Output:
    """Collects a spawned process's stdout lines (with arrival times) in a thread; every wait is bounded."""

    def __init__(self, proc: subprocess.Popen, name: str) -> None:
        self.proc = proc
        self.name = name
        self.lines: list[tuple[float, str]] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, name=f"read-{name}", daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                self.cond.notify_all()

    def wait_line(self, pred: Callable[[str], bool], timeout: float, start: int = 0) -> tuple[float, str] | None:
        """First line at index >= start matching pred, waiting at most timeout seconds."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for t, line in self.lines[start:]:
                    if pred(line):
                        return t, line
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def mark(self) -> int:
        with self.cond:
            return len(self.lines)

    def received_since(self, start: int) -> int:
        with self.cond:
            return sum(1 for _, line in self.lines[start:] if line.startswith("RECV "))

    def tail(self, n: int = 15) -> str:
        with self.cond:
            return "\n".join(line for _, line in self.lines[-n:])


class Agent:
    """A helper process inside one namespace that answers master state queries and calls the probe service."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.lock = threading.Lock()

    def ask(self, cmd: dict, timeout: float = 6.0) -> dict:
        with self.lock:
            start = self.out.mark()
            self.out.proc.stdin.write(json.dumps(cmd) + "\n")
            self.out.proc.stdin.flush()
            got = self.out.wait_line(lambda line: line.startswith("{"), timeout, start)
        if got is None:
            return {"ok": False, "error": "agent did not answer"}
        return json.loads(got[1])

    def state(self) -> tuple[dict, dict, dict] | None:
        reply = self.ask({"op": "state"})
        if not reply.get("ok"):
            return None
        return tuple({name: set(nodes) for name, nodes in table} for table in reply["state"])

    def wait_state(self, pred: Callable[[tuple[dict, dict, dict]], bool], timeout: float) -> float | None:
        """Seconds until the master's state satisfies pred (polled every 0.1 s), None if it never did."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            state = self.state()
            if state is not None and pred(state):
                return time.monotonic() - t0
            time.sleep(0.1)
        return None


def mirrors(table: dict, name: str) -> list[str]:
    return sorted(n for n in table.get(name, ()) if n.startswith(PREFIX))


def originals(table: dict, name: str) -> list[str]:
    return sorted(n for n in table.get(name, ()) if not n.startswith(PREFIX))


class BridgeTest(unittest.TestCase):
    tb = None

    @classmethod
    def setUpClass(cls) -> None:
        if os.geteuid() != 0:
            raise unittest.SkipTest(
                f"the bridge rostest needs root: it builds network namespaces with the Testbed (uid is {os.geteuid()})"
            )
        from intradp_ros.eval.testbed import Testbed

        cls.tb = Testbed(rate_mbit=200.0, name="brt")
        try:
            cls.tb.start_masters()
            cls.bridge = cls.start_bridge()
            cls.robot_agent = Agent(cls.spawn("robot", "agent", stdin=True))
            cls.server_agent = Agent(cls.spawn("server", "agent", stdin=True))
            cls.talker = cls.spawn("robot", "talker", UP)
            cls.echo = cls.spawn("server", "echo", UP, DOWN)
            cls.server_listener = cls.spawn("server", "listener", UP)
            cls.robot_listener = cls.spawn("robot", "listener", DOWN)
            cls.service = cls.spawn("server", "service", PROBE)
            for out in (
                cls.robot_agent.out,
                cls.server_agent.out,
                cls.talker,
                cls.echo,
                cls.server_listener,
                cls.robot_listener,
                cls.service,
            ):
                if out.wait_line(lambda line: line == "READY", STARTUP_S) is None:
                    raise AssertionError(f"{out.name} did not start:\n{out.tail()}")
        except BaseException:
            cls.tb.down()
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        if cls.tb is not None:
            cls.tb.down()

    @classmethod
    def spawn(cls, side: str, role: str, *args: str, stdin: bool = False) -> Output:
        proc = cls.tb.spawn(
            side,
            [PY, NODES, role, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        return Output(proc, f"{side}-{role}")

    @classmethod
    def start_bridge(cls) -> Output:
        proc = cls.tb.spawn(
            "robot",
            [
                PY,
                BRIDGE,
                "--peer",
                cls.tb.server.master_uri,
                "--topics",
                "/intradp/bt/*",
                "--services",
                "/intradp/bt/*",
                "--period",
                "0.2",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        return Output(proc, "bridge")

    def assertWithin(self, seconds: float | None, limit: float, what: str) -> None:
        self.assertIsNotNone(seconds, f"{what}: not within {limit} s\nbridge log:\n{self.bridge.tail()}")
        self.assertLessEqual(seconds, limit, f"{what}\nbridge log:\n{self.bridge.tail()}")
        print(f"[bridge_test] {what}: {seconds:.2f} s", flush=True)

    def wait_received(self, out: Output, start: int, n: int, timeout: float) -> float | None:
        t0 = time.monotonic()
        got = out.wait_line(lambda line: line.startswith("RECV "), timeout, start)
        if got is None:
            return None
        deadline = t0 + timeout
        while out.received_since(start) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return max(0.0, got[0] - t0) if out.received_since(start) >= n else None

    def mirrored(self, state: tuple[dict, dict, dict]) -> bool:
        """The steady state: robot talker mirrored on the server, server echo + service mirrored on the robot."""
        return bool(mirrors(state[0], UP))

    # ---------------------------------------------------------------------------------------------------------
    def test_1_topic_robot_to_server_and_back(self) -> None:
        self.assertWithin(
            self.wait_received(self.server_listener, 0, 5, STARTUP_S),
            STARTUP_S,
            "robot topic reaches the server subscriber",
        )
        self.assertWithin(
            self.wait_received(self.robot_listener, 0, 5, STARTUP_S),
            STARTUP_S,
            "echo comes back to the robot subscriber",
        )
        server = self.server_agent.state()
        robot = self.robot_agent.state()
        self.assertEqual(len(mirrors(server[0], UP)), 1, server[0])  # the robot talker, once
        self.assertEqual(mirrors(robot[0], UP), [], "a mirror was mirrored back")
        self.assertEqual(len(mirrors(robot[0], DOWN)), 1, robot[0])  # the server echo node
        self.assertEqual(mirrors(server[0], DOWN), [], "a mirror was mirrored back")
        # subscribers stay on their own master only
        self.assertFalse(
            any(n.startswith(PREFIX) for table in (server[1], robot[1]) for ns in table.values() for n in ns)
        )

    def test_2_service_on_server_callable_from_robot(self) -> None:
        reply = self.robot_agent.ask({"op": "call", "service": PROBE, "bytes": 4096})
        self.assertTrue(reply.get("ok"), reply)
        self.assertEqual(reply["received_bytes"], 4096)

    def test_3_vanished_publisher_is_unregistered(self) -> None:
        extra = self.spawn("robot", "talker", EXTRA)
        self.assertIsNotNone(extra.wait_line(lambda line: line == "READY", STARTUP_S), extra.tail())
        self.assertWithin(
            self.server_agent.wait_state(lambda s: bool(mirrors(s[0], EXTRA)), 5.0),
            5.0,
            "new robot publisher mirrored on the server",
        )
        self.tb.stop(extra.proc)  # SIGINT: the node unregisters from its own master
        self.assertWithin(
            self.server_agent.wait_state(lambda s: EXTRA not in s[0], RESYNC_S),
            RESYNC_S,
            "vanished publisher unregistered on the server",
        )

    def test_3a_publisher_readvertised_at_the_same_uri(self) -> None:
        """The remote subscriber's connection dies with the old publisher and the masters' states look unchanged
        (same caller id, same URI): the bridge must still get the subscriber to connect to the new publisher."""
        pub = self.spawn("robot", "readvertiser", READV, stdin=True)
        sub = self.spawn("server", "listener", READV)
        try:
            for out in (pub, sub):
                self.assertIsNotNone(out.wait_line(lambda line: line == "READY", STARTUP_S), out.tail())
            self.assertWithin(
                self.wait_received(sub, 0, 3, STARTUP_S), STARTUP_S, "first publisher reaches the server subscriber"
            )
            gaps_seen = 0
            for gen in range(1, CYCLES + 1):
                pub_mark, sub_mark, bridge_mark = pub.mark(), sub.mark(), self.bridge.mark()
                pub.proc.stdin.write("cycle\n")
                pub.proc.stdin.flush()
                cycled = pub.wait_line(lambda line, gen=gen: line == f"CYCLED {gen}", 5.0, pub_mark)
                self.assertIsNotNone(cycled, pub.tail())
                got = sub.wait_line(lambda line, gen=gen: line.startswith(f"RECV {gen}:"), REATTACH_S + 3.0, sub_mark)
                self.assertWithin(
                    None if got is None else max(0.0, got[0] - cycled[0]),
                    REATTACH_S,
                    f"cycle {gen}: the re-advertised publisher reaches the server subscriber",
                )
                last = int(got[1].split(":")[1]) + HOLD_MSGS
                held = sub.wait_line(
                    lambda line, gen=gen, last=last: (
                        line.startswith(f"RECV {gen}:") and int(line.split(":")[1]) >= last
                    ),
                    5.0,
                    sub_mark,
                )
                self.assertIsNotNone(held, f"cycle {gen}: the new connection did not last:\n{sub.tail()}")
                gaps_seen += any(
                    "removed mirror of publisher " + READV in line for _, line in self.bridge.lines[bridge_mark:]
                )
            print(
                f"[bridge_test] the bridge's polls saw the publisher gone in {gaps_seen} of {CYCLES} cycles", flush=True
            )
        finally:
            self.tb.stop(pub.proc)
            self.tb.stop(sub.proc)

    def test_4_bridge_restart(self) -> None:
        # SIGINT: the bridge removes its mirrors from both masters
        self.tb.stop(type(self).bridge.proc)
        self.assertIsNotNone(
            self.bridge.wait_line(lambda line: "removed" in line and "mirrors" in line, 1.0), self.bridge.tail()
        )
        state = self.server_agent.state()
        self.assertEqual(mirrors(state[0], UP), [], state[0])
        self.assertEqual(mirrors(self.robot_agent.state()[2], PROBE), [])
        type(self).bridge = self.start_bridge()
        self.assertWithin(
            self.server_agent.wait_state(self.mirrored, STARTUP_S), STARTUP_S, "restarted bridge re-synced"
        )
        # SIGKILL: mirrors stay behind; the next bridge adopts them instead of registering twice
        self.bridge.proc.kill()
        self.bridge.proc.wait(timeout=10)
        type(self).bridge = self.start_bridge()
        synced = self.bridge.wait_line(lambda line: "in sync:" in line, STARTUP_S)
        self.assertIsNotNone(synced, self.bridge.tail())
        self.assertNotIn("(0 adopted", synced[1])
        self.assertEqual(len(mirrors(self.server_agent.state()[0], UP)), 1)
        self.assertFalse(
            any("mirrored publisher " + UP in line for _, line in self.bridge.lines),
            "the restarted bridge registered again instead of adopting",
        )
        start = self.server_listener.mark()
        self.assertWithin(self.wait_received(self.server_listener, start, 3, 5.0), 5.0, "data still flows")
        reply = self.robot_agent.ask({"op": "call", "service": PROBE, "bytes": 10})
        self.assertTrue(reply.get("ok"), reply)

    def _restart_master(self, side: str) -> float:
        self.tb.stop_master(side)
        time.sleep(0.5)
        self.tb.start_master(side)
        return time.monotonic()

    def _first_recv_after(self, out: Output, start: int, back: float) -> float | None:
        got = out.wait_line(lambda line: line.startswith("RECV "), RESYNC_S, start)
        return None if got is None else max(0.0, got[0] - back)

    def test_5_server_master_restart(self) -> None:
        back = self._restart_master("server")
        mark_server, mark_robot = self.server_listener.mark(), self.robot_listener.mark()
        self.assertWithin(
            self.server_agent.wait_state(
                lambda s: (
                    bool(mirrors(s[0], UP))
                    and bool(originals(s[1], UP))
                    and bool(originals(s[0], DOWN))
                    and bool(originals(s[2], PROBE))
                ),
                RESYNC_S,
            ),
            RESYNC_S,
            "server master refilled (robot mirror + restored subscriber, publisher, service)",
        )
        self.assertWithin(
            self._first_recv_after(self.server_listener, mark_server, back),
            RESYNC_S,
            "robot topic flows to the server after its master restart",
        )
        self.assertWithin(
            self._first_recv_after(self.robot_listener, mark_robot, back),
            RESYNC_S,
            "echo flows back to the robot after the server master restart",
        )
        newcomer = self.spawn("server", "listener", UP)
        self.assertWithin(
            self.wait_received(newcomer, 0, 3, STARTUP_S),
            STARTUP_S,
            "a subscriber started after the restart receives the robot topic",
        )
        self.tb.stop(newcomer.proc)

    def test_6_robot_master_restart(self) -> None:
        back = self._restart_master("robot")
        mark = self.robot_listener.mark()
        self.assertWithin(
            self.robot_agent.wait_state(
                lambda s: (
                    bool(mirrors(s[0], DOWN))
                    and bool(mirrors(s[2], PROBE))
                    and bool(originals(s[0], UP))
                    and bool(originals(s[1], DOWN))
                ),
                RESYNC_S,
            ),
            RESYNC_S,
            "robot master refilled (server mirrors + restored talker and subscriber)",
        )
        self.assertWithin(
            self._first_recv_after(self.robot_listener, mark, back),
            RESYNC_S,
            "echo flows to the robot after its master restart",
        )
        reply = self.robot_agent.ask({"op": "call", "service": PROBE, "bytes": 100})
        self.assertTrue(reply.get("ok"), reply)
        self.assertWithin(time.monotonic() - back, RESYNC_S + 1.0, "service callable from the robot again")


if __name__ == "__main__":
    rostest.rosrun(PKG, "bridge", BridgeTest)
