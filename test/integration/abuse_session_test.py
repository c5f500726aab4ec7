#!/usr/bin/env python3
"""rostest: a node without the shared key attacks an authenticated robot session (docs/security.md).

Server and KAPAO client (robot1) run with the same key file on a Testbed (two masters, the bridge); the feeder sends
closed-loop frames while abuse_attacker.py (on the robot's master, no key) forges down tiles with the running
request id, calls the handshake service for robot1 without the key (full handshakes and heartbeats), floods the up
topic with 200 fresh request ids and replays robot1's own authentic up tiles. Checked: every published result
equals local inference and no frame fell back (the robot keeps offloading), every takeover was refused, the forged
and replayed tiles were counted on both sides (security diagnostics), and the server's thread count did not grow.
"""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import rostest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import system_testlib as lib

PKG = "intradp_ros"
FRAMES = 10  # distinct camera frames, sent in turn at RATE Hz for DURATION s once the robot offloads
RATE = 4.0
DURATION = 14.0
ATTACKER = Path(__file__).resolve().parent / "abuse_attacker.py"
FLOOD = 200
TAKEOVERS = 8


def threads_of(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class AbuseSessionTest(lib.SystemTestCase):
    tag = "abuse"

    @classmethod
    def start(cls, system):
        key = Path(system.cache) / "intradp.key"
        from intradp_ros.core.auth import write_secret

        write_secret(key)
        # two buckets (the client starts at 50 MB/s): the plan-book solve dominates this suite's run time
        server = system.start_server([lib.KAPAO], ["robot1"], ["--key-file", str(key), "--grid", "20,50"])
        system.start_client("kapao", "robot1", lib.KAPAO, ["--deadline", "8", "--key-file", str(key)])
        attacker = system.tb.spawn(
            "robot",
            [sys.executable, str(ATTACKER), "--robot", "robot1", "--flood", str(FLOOD), "--takeovers", str(TAKEOVERS)],
            env=system.env,
            stdout=subprocess.PIPE,
            stderr=system.log("attacker_err"),
            stdin=subprocess.DEVNULL,
            text=True,
        )
        cls.attack = lib.Lines(attacker, system.logdir / "attacker.jsonl")
        cls.lines = system.start_feeder(
            "kapao",
            "robot1",
            ["--frames", str(FRAMES), "--rate", str(RATE), "--duration", str(DURATION), "--warm-until-distributed",
             "--frame-timeout", "15", "--wait-ready", "120"],
        )  # fmt: skip
        cls.threads = []  # (time, server thread count), sampled every 0.1 s from the start
        stop = threading.Event()

        def sample():
            while not stop.wait(0.1):
                n = threads_of(server.pid)
                if n is not None:
                    cls.threads.append((time.time(), n))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            if not cls.lines.wait_for(lambda: cls.lines.of("warm") or cls.lines.of("error"), timeout=150):
                raise AssertionError("the client never ran distributed within 150 s")
            if not cls.lines.wait_for(lambda: cls.lines.of("done") or cls.lines.of("error"), timeout=120):
                raise AssertionError("feeder did not finish within 120 s")
            cls.attack.wait_for(lambda: cls.attack.of("attacks_done") or cls.attack.of("error"), timeout=30)
            time.sleep(1.0)
        finally:
            stop.set()
            sampler.join(2.0)
        cls.ref = lib.LocalReference("kapao", lib.KAPAO, FRAMES)

    def status(self, suffix, hardware_id, lines=None):
        """The last status seen by the feeder (after its frames), or by the attacker (after its attacks)."""
        found = [
            s
            for s in (lines or self.lines).of("diagnostics")
            if s["name"].endswith(suffix) and s["hardware_id"] == hardware_id
        ]
        self.assertTrue(found, f"no '{suffix}' status of {hardware_id} on /diagnostics")
        return found[-1]

    def test_attacks_ran_while_the_robot_offloaded(self):
        self.assertFalse(self.attack.of("error"), self.attack.of("error"))
        self.assertTrue(self.attack.of("attacking"), "the attacker never saw the robot offload")
        self.assertTrue(self.attack.of("forged"), "no forged down tiles were sent")
        self.assertTrue(self.attack.of("flood"), "the flood never ran")
        self.assertTrue(self.attack.of("attacks_done"), "the attacks never finished")
        frames = self.lines.of("sent")
        began, ended = self.attack.of("attacking")[0]["t"], self.attack.of("attacks_done")[0]["t"]
        self.assertGreater(len([f for f in frames if began < f["t"] < ended]), 5, "too few frames during the attacks")
        self.assertGreater(len([f for f in frames if f["t"] > ended]), 2, "no frames after the attacks")

    def test_every_result_equals_local_inference_and_no_frame_fell_back(self):
        self.assertFalse(self.lines.of("error"), self.lines.of("error"))
        res = {r["frame"]: r for r in self.lines.of("result") if r["frame"].startswith("f")}
        sent = [f["frame"] for f in self.lines.of("sent") if f["frame"].startswith("f")]
        # newest frame wins: a frame replaced by a newer one before the client took it has no result (counted)
        self.assertGreaterEqual(len(res), 0.8 * len(sent), f"{len(res)} results for {len(sent)} frames")
        bad, total = lib.kapao_mismatches(self.ref, res)
        self.assertFalse(bad, bad)
        self.assertGreater(total, 0, "the comparison is empty: no poses at these thresholds")
        stats = [s for s in self.lines.of("stats") if s["frame"].startswith("f")]
        self.assertEqual(len(stats), len(res))
        fell = [(s["frame"], s["error"]) for s in stats if s["fell_back"] or s["tiles_down"] == 0]
        self.assertFalse(fell, f"frames not offloaded under attack: {fell}")
        forged = sum(r["tiles"] for r in self.attack.of("forged"))
        lat = sorted(s["latency_s"] for s in stats)
        print(
            f"[abuse] {len(res)} of {len(sent)} frames answered, all equal to local inference and offloaded, under "
            f"{forged} forged down tiles; latency median {lat[len(lat) // 2] * 1e3:.0f} ms, max {lat[-1] * 1e3:.0f} ms"
        )

    def test_every_takeover_was_refused_for_authentication(self):
        tries = self.attack.of("takeover")
        self.assertEqual(len(tries), 3 * TAKEOVERS)
        wrong = [t for t in tries if t["accepted"] is not False or not t["error"].startswith("authentication:")]
        self.assertFalse(wrong, wrong)
        server = self.status(": security", "server", self.attack)
        self.assertGreaterEqual(int(server["values"]["refused_handshakes"]), 3 * TAKEOVERS)

    def test_forged_flooded_and_replayed_tiles_were_counted_and_dropped(self):
        client = self.status(": security", "robot1")
        self.assertEqual(client["values"]["authenticated"], "yes")
        self.assertGreater(int(client["values"].get("forged_tiles_bad_mac", 0)), 0, client)
        server = self.status(": security", "server", self.attack)
        flood = self.attack.of("flood")[0]
        dropped = int(server["values"]["robot1_forged_tiles"])
        self.assertGreaterEqual(dropped, FLOOD + flood["replayed"], server)
        self.assertEqual(server["values"]["robot1_refused_busy"], "0", server)  # nothing got far enough to count
        print(f"[abuse] server dropped {dropped} unauthenticated or replayed up tiles: {json.dumps(server['values'])}")

    def test_server_threads_did_not_grow(self):
        self.assertGreater(len(self.threads), 10, "thread count never sampled")
        attack_t = self.attack.of("attacking")[0]["t"]
        before = [n for t, n in self.threads if attack_t - 5.0 < t < attack_t]
        during = [n for t, n in self.threads if t >= attack_t]
        self.assertTrue(before and during, "no samples before or after the attacks began")
        base = max(before)
        self.assertLessEqual(max(during), base + 8, f"threads {base} before, up to {max(during)} during the attacks")
        self.assertLessEqual(during[-1], base + 2, f"threads {base} before, {during[-1]} after the attacks")
        print(f"[abuse] server threads: {base} before, at most {max(during)} during, {during[-1]} after")


if __name__ == "__main__":
    rostest.rosrun(PKG, "abuse_session", AbuseSessionTest, sys.argv)
