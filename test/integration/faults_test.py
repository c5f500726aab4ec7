#!/usr/bin/env python3
"""rostest: the client survives the server being killed and restarted, and the bridge being restarted.

Timeline (after the client first runs distributed): SIGKILL the server at +6 s (mid-run: frames arrive every
0.5 s and are split with the server), start a new server at +14 s, stop the master bridge at +30 s and start a
new one at +34 s, stop feeding at +46 s. Deadline 3 s per frame.
"""

import os
import re
import signal
import sys
import time
from pathlib import Path

import rostest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import system_testlib as lib

PKG = "intradp_ros"
DEADLINE = 3.0
RESUME_LIMIT = 5.0
READY_RE = re.compile(r"\[INFO\] \[(\d+\.\d+)\]: server ready")


distributed = lib.distributed


class FaultsTest(lib.SystemTestCase):
    tag = "faults"

    @classmethod
    def start(cls, sys_):
        server = sys_.start_server([lib.KAPAO], ["robot1"])
        sys_.start_client("kapao", "robot1", lib.KAPAO, ["--deadline", str(DEADLINE)])
        cls.lines = sys_.start_feeder(
            "kapao",
            "robot1",
            ["--frames", "20", "--rate", "2", "--duration", "46", "--warm-until-distributed", "--wait-ready", "90"],
        )
        if not cls.lines.wait_for(lambda: cls.lines.of("warm"), timeout=100):
            raise AssertionError("the client never ran distributed within 100 s")
        t0 = time.time()
        cls.wait_until(t0 + 6)
        os.killpg(server.pid, signal.SIGKILL)
        cls.killed = time.time()
        cls.wait_until(t0 + 14)
        cls.restarted = time.time()
        sys_.start_server([lib.KAPAO], ["robot1"], tag="server2")
        cls.wait_until(t0 + 30)
        sys_.tb.stop(sys_.bridge)
        cls.bridge_stopped = time.time()
        cls.wait_until(t0 + 34)
        sys_.start_bridge()
        cls.bridge_started = time.time()
        if not cls.lines.wait_for(lambda: cls.lines.of("done"), timeout=40):
            raise AssertionError("feeder did not finish")
        text = (sys_.logdir / "server2.log").read_text(errors="replace")
        m = READY_RE.search(text)
        cls.server_ready = float(m.group(1)) if m else None

    @staticmethod
    def wait_until(t):
        time.sleep(max(0.0, t - time.time()))

    def frames(self):
        sent = {r["frame"]: r["t"] for r in self.lines.of("sent")}
        res = {r["frame"]: r["t"] for r in self.lines.of("result")}
        stats = {s["frame"]: s for s in self.lines.of("stats")}
        return sent, res, stats

    def test_no_frame_lost_or_late(self):
        sent, res, stats = self.frames()
        self.assertGreater(len(sent), 60)
        missing = sorted(set(sent) - set(res))
        late = {f: res[f] - sent[f] for f in res if f in sent and res[f] - sent[f] > DEADLINE + 0.5}
        over = {f: s["latency_s"] for f, s in stats.items() if s["latency_s"] > DEADLINE}
        answered = [f for f in sent if f in res]
        print(f"[faults] {len(answered)}/{len(sent)} frames answered; {len(missing)} missing, {len(late)} late")
        self.assertFalse(missing, f"frames without a result: {missing}")
        self.assertFalse(late, f"results later than the deadline: {late}")
        self.assertFalse(over, f"latency over the deadline: {over}")

    def test_results_keep_coming_locally_while_the_server_is_away(self):
        _sent, _res, stats = self.frames()
        away = [s for s in stats.values() if self.killed + 0.5 < s["t"] < self.restarted]
        self.assertGreaterEqual(len(away), 10, "results stopped while the server was away")
        self.assertFalse([s for s in away if distributed(s)], "distributed frames while the server was dead?")
        fell = [s for s in stats.values() if s["fell_back"]]
        print(
            f"[faults] {len(away)} local results while the server was away; {len(fell)} frame(s) finished "
            f"locally after a distributed start"
        )

    def test_distributed_resumes_after_server_restart(self):
        self.assertIsNotNone(self.server_ready, "restarted server never logged 'server ready'")
        _sent, _res, stats = self.frames()
        after = sorted(s["t"] for s in stats.values() if distributed(s) and s["t"] > self.restarted)
        self.assertTrue(after, "never distributed again after the server restart")
        resume = after[0] - self.server_ready
        print(
            f"[faults] server restart: ready {self.server_ready - self.restarted:.1f} s after the start, "
            f"distributed again {resume:.2f} s after ready"
        )
        self.assertLess(resume, RESUME_LIMIT)

    def test_distributed_resumes_after_bridge_restart(self):
        _sent, _res, stats = self.frames()
        after = sorted(s["t"] for s in stats.values() if distributed(s) and s["t"] > self.bridge_started)
        self.assertTrue(after, "never distributed after the bridge restart")
        resume = after[0] - self.bridge_started
        during = [s for s in stats.values() if self.bridge_stopped < s["t"] < self.bridge_started]
        print(
            f"[faults] bridge restart: distributed again {resume:.2f} s after the new bridge started "
            f"({len(during)} results while it was down)"
        )
        self.assertLess(resume, RESUME_LIMIT)
        self.assertGreater(len(during), 3, "results stopped while the bridge was down")


if __name__ == "__main__":
    rostest.rosrun(PKG, "faults", FaultsTest, sys.argv)
