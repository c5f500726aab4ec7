#!/usr/bin/env python3
"""rostest: a hung server (SIGSTOP, then SIGCONT), a master bridge killed with SIGKILL (its mirrors stay stale on
both masters) and restarted, and the server's roscore crashing (SIGKILL) and restarting, while frames run.

Timeline after the client first runs distributed (t0), frames at 2 Hz, deadline 3 s:
  t0+3   SIGSTOP the server (every thread frozen, its sockets open); t0+10 SIGCONT
  t0+18  SIGKILL the master bridge; t0+21 a new bridge starts
  t0+28  SIGKILL the server's roscore; t0+35 it starts again (same URI); feeding ends at t0+45
Every frame is answered within its deadline (or dropped by the client's one-frame mailbox while an earlier one
waits out its deadline, and counted), every published result equals local inference on the same frame,
and distributed inference resumes after each fault. (The server killed during a frame and a graceful bridge
restart are faults.test; the robot's roscore restart and a never-reading subscriber are abuse_load.test.)
"""

import os
import signal
import sys
import time
from pathlib import Path

import rostest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import system_testlib as lib

from intradp_ros.eval.soak_report import input_drops

PKG = "intradp_ros"
DEADLINE = 3.0
FRAMES = 10
RESUME_LIMIT = 10.0  # s from the end of a fault to the first distributed frame (heartbeat, handshake, plan)


distributed = lib.distributed


class FaultsHangTest(lib.SystemTestCase):
    tag = "hang"

    @classmethod
    def start(cls, sys_):
        server = sys_.start_server([lib.KAPAO], ["robot1"])
        sys_.start_client("kapao", "robot1", lib.KAPAO, ["--deadline", str(DEADLINE)])
        cls.lines = sys_.start_feeder(
            "kapao",
            "robot1",
            [
                "--frames",
                str(FRAMES),
                "--rate",
                "2",
                "--duration",
                "45",
                "--warm-until-distributed",
                "--wait-ready",
                "90",
            ],
        )
        if not cls.lines.wait_for(lambda: cls.lines.of("warm"), timeout=100):
            raise AssertionError("the client never ran distributed within 100 s")
        t0 = time.time()
        try:
            cls.wait_until(t0 + 3)
            os.killpg(server.pid, signal.SIGSTOP)
            cls.stopped = time.time()
            cls.wait_until(t0 + 10)
        finally:  # never leave a frozen server behind (down() could not stop it gracefully)
            os.killpg(server.pid, signal.SIGCONT)
        cls.continued = time.time()
        cls.wait_until(t0 + 18)
        os.killpg(sys_.bridge.pid, signal.SIGKILL)
        sys_.bridge.wait(10)
        cls.bridge_killed = time.time()
        cls.wait_until(t0 + 21)
        sys_.start_bridge()
        cls.bridge_started = time.time()
        cls.wait_until(t0 + 28)
        sys_.tb.stop_master("server", crash=True)
        cls.master_killed = time.time()
        cls.wait_until(t0 + 35)
        sys_.tb.start_master("server")
        cls.master_started = time.time()
        if not cls.lines.wait_for(lambda: cls.lines.of("done"), timeout=40):
            raise AssertionError("feeder did not finish")
        cls.ref = lib.LocalReference("kapao", lib.KAPAO, FRAMES)

    @staticmethod
    def wait_until(t):
        time.sleep(max(0.0, t - time.time()))

    def stats(self):
        return {s["frame"]: s for s in self.lines.of("stats") if s["frame"].startswith("f")}

    def resumed_after(self, t):
        after = sorted(s["t"] for s in self.stats().values() if distributed(s) and s["t"] > t)
        return after[0] - t if after else None

    def test_every_frame_answered_within_its_deadline_and_equal_to_local_inference(self):
        sent = {r["frame"]: r["t"] for r in self.lines.of("sent")}
        res = {r["frame"]: r for r in self.lines.of("result") if r["frame"].startswith("f")}
        self.assertGreater(len(sent), 60)
        missing = sorted(set(sent) - set(res), key=lib.frame_index)
        late = {f: round(res[f]["t"] - sent[f], 2) for f in res if f in sent and res[f]["t"] - sent[f] > DEADLINE + 0.5}
        wrong = []
        for fid, got in res.items():
            why = lib.compare_kapao(self.ref.result(lib.frame_index(fid))[0], got)
            if why:
                wrong.append(f"{fid}: {why}")
        poses = sum(len(r["poses"]) for r in res.values())
        dropped = input_drops(self.lines.of("stats"), min(sent.values()), float("inf"))
        print(
            f"[faults_hang] {len(res)}/{len(sent)} frames answered, {dropped} dropped by the client's mailbox while "
            f"an earlier frame waited, {len(late)} late, {len(wrong)} differ from local inference ({poses} poses "
            f"compared)"
        )
        self.assertLessEqual(len(missing), dropped, f"frames without a result and not counted as dropped: {missing}")
        self.assertFalse(late, f"results later than the deadline: {late}")
        self.assertFalse(wrong, wrong)
        self.assertGreater(poses, 0, "the comparison is empty")

    def test_a_hung_server_sends_frames_local_within_the_deadline_and_offload_resumes_after_sigcont(self):
        hung = [s for s in self.stats().values() if self.stopped + DEADLINE + 0.5 < s["t"] < self.continued]
        dist = [s for s in hung if distributed(s)]
        over = [s["latency_s"] for s in hung if s["latency_s"] > DEADLINE]
        resume = self.resumed_after(self.continued)
        print(
            f"[faults_hang] server hung {self.continued - self.stopped:.1f} s: {len(hung)} results while hung, "
            f"{len(dist)} distributed; distributed again {resume} s after SIGCONT"
        )
        self.assertGreaterEqual(len(hung), 5, "results stopped while the server was hung")
        self.assertFalse(dist, "a distributed result while the server was frozen?")
        self.assertFalse(over, f"latency over the deadline while hung: {over}")
        self.assertIsNotNone(resume, "never distributed again after SIGCONT")
        self.assertLess(resume, RESUME_LIMIT)

    def test_offload_resumes_after_the_bridge_is_killed_and_restarted(self):
        down = [s for s in self.stats().values() if self.bridge_killed < s["t"] < self.bridge_started]
        resume = self.resumed_after(self.bridge_started)
        print(
            f"[faults_hang] bridge SIGKILLed for {self.bridge_started - self.bridge_killed:.1f} s: {len(down)} results "
            f"meanwhile ({sum(map(distributed, down))} distributed); distributed again {resume} s after the restart"
        )
        self.assertGreater(len(down), 3, "results stopped while the bridge was dead")
        self.assertIsNotNone(resume, "never distributed after the bridge restart")
        self.assertLess(resume, RESUME_LIMIT)

    def test_the_server_roscore_crash_loses_no_frame_and_offload_goes_on(self):
        away = [s for s in self.stats().values() if self.master_killed + 1 < s["t"] < self.master_started]
        dist = [s for s in away if distributed(s)]
        resume = self.resumed_after(self.master_started)
        print(
            f"[faults_hang] server roscore dead {self.master_started - self.master_killed:.1f} s: {len(dist)}/"
            f"{len(away)} frames distributed meanwhile; distributed {resume} s after it came back"
        )
        self.assertGreaterEqual(len(away), 8, "results stopped while the server's roscore was dead")
        self.assertIsNotNone(resume, "never distributed after the server's roscore came back")
        self.assertLess(resume, RESUME_LIMIT)


if __name__ == "__main__":
    rostest.rosrun(PKG, "faults_hang", FaultsHangTest, sys.argv)
