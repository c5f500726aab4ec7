#!/usr/bin/env python3
"""rostest: the bandwidth monitor follows a shaped link whose tbf bucket follows the rate (a few ms of traffic).

Inside a Testbed (robot and server namespaces, tbf on both veth ends, a roscore on each side, the master bridge):
bandwidth_probe_server runs on the server side, bandwidth_monitor and a listener (bandwidth_listener.py, which prints
what it hears as JSON lines and publishes a plan book as the client would) on the robot side. At 40 Mbit/s the
steady-state estimate is within 15 % of the shaped rate (tbf goodput is about 95 % of it) and the plan does not
change; after tb.set_rate(10) the estimate is within 15 % of 10 Mbit/s within about a second and a PlanSwitch for
a lower bucket of the plan book, with its predicted latency, is published; at 4.65 Mbit/s (the indoor trace's mean
with time dilation k = 20) the estimate is again within 15 %. The monitor only ever sees goodput: nothing tells it
the tbf rate. Needs root (skipped with the reason otherwise).
"""

import json
import os
import statistics
import subprocess
import sys
import time
import unittest
from pathlib import Path

import rostest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from system_testlib import Lines

PKG = "intradp_ros"
ROBOT = "robot1"
HIGH_MBIT = 40.0
LOW_MBIT = 10.0
DILATED_MBIT = 4.65  # indoor trace mean / 20
TOLERANCE = 0.15
STEADY_S = 8.0  # run at the high rate this long before the step
AFTER_STEP_S = 5.0  # and this long after it
DILATED_S = 6.0  # then this long at the dilated rate
BUSY_S = 12.0  # then this long with inference running (fake frames at 1 Hz): probes under the busy duty cycle
BUSY_DUTY = 0.05
BOOK_BUCKETS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)  # MB/s
FOLLOW_LIMIT_S = 2.0  # "within about a second" (measured ~1 s), with room for a loaded 2-core machine
LISTENER = Path(__file__).resolve().parent / "bandwidth_listener.py"


def plan_book_json() -> str:
    """A plan table in the server's plan-book format: one row per bucket, predicted latency 0.1 s / bucket."""
    rows = [
        {
            "bandwidth_MBps": b,
            "plan": {"graph": "g", "robot": [[0, i + 1]], "server": [], "name": f"book_{b:g}"},
            "predictions": {"intradp": {"latency_s": 0.1 / b}},
        }
        for i, b in enumerate(BOOK_BUCKETS)
    ]
    return json.dumps({"format": "intradp_plan_table/1", "graph": "g", "meta": {}, "rows": rows})


class BandwidthMonitorTest(unittest.TestCase):
    tb = None

    @classmethod
    def setUpClass(cls) -> None:
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root: the Testbed builds network namespaces and tc qdiscs")
        from intradp_ros.eval.nodes import script_argv, start_bridge
        from intradp_ros.eval.testbed import Testbed

        cls.tb = Testbed(rate_mbit=HIGH_MBIT, name="bwmon")
        try:
            quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
            cls.tb.start_masters()
            start_bridge(cls.tb, "robot")
            cls.tb.spawn("server", script_argv("bandwidth_probe_server", "--robots", ROBOT), **quiet)
            cls.tb.spawn("robot", script_argv("bandwidth_monitor", "--robot", ROBOT, "--rate", "5"), **quiet)
            book = Path(cls.tb.workdir) / "plan_book.json"
            book.write_text(plan_book_json())
            cls.listener = cls.tb.spawn(
                "robot",
                [str(LISTENER), ROBOT, "--lifetime", "110", "--plan-book", str(book)],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.PIPE,
                text=True,
            )
            cls.records = Lines(cls.listener)
            if not cls.records.wait_for(lambda: cls.records.of("estimate"), timeout=30):
                raise AssertionError("no BandwidthEstimate within 30 s of starting the nodes")
            cls.first_estimate = cls.records.of("estimate")[0]["t"]
            time.sleep(STEADY_S)
            cls.step_t = time.monotonic()
            cls.tb.set_rate(LOW_MBIT)
            time.sleep(AFTER_STEP_S)
            cls.dilated_t = time.monotonic()
            cls.tb.set_rate(DILATED_MBIT)
            time.sleep(DILATED_S)
            cls.listener.stdin.write("frames 1\n")
            cls.listener.stdin.flush()
            time.sleep(3.0)  # the duty budget's window still holds idle-time probes
            from intradp_ros.eval.shaping import sent_bytes

            sides = (cls.tb.robot, cls.tb.server)
            before = [sent_bytes(s.ns, s.dev) for s in sides]
            cls.busy_t = time.monotonic()
            time.sleep(BUSY_S)
            cls.busy_bytes = [sent_bytes(s.ns, s.dev) - b for s, b in zip(sides, before)]
            cls.busy_s = time.monotonic() - cls.busy_t
        except BaseException:
            cls.tb.down()
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        if cls.tb is not None:
            try:
                cls.listener.stdin.close()
            except (OSError, AttributeError):
                pass
            cls.tb.down()

    def estimates(self, start: float, stop: float) -> list:
        return [r for r in self.records.of("estimate") if start <= r["t"] < stop]

    def test_steady_state_within_15_percent(self) -> None:
        window = self.estimates(self.step_t - 4.0, self.step_t)
        self.assertGreaterEqual(len(window), 10, "expected ~5 Hz estimates before the step")
        self.assertTrue(all(r["samples"] > 0 for r in window), "window aged out while the link was idle")
        median = statistics.median(r["mbit"] for r in window)
        raw = statistics.median(r["raw"] for r in window)
        print(
            f"[bandwidth_monitor] steady state at {HIGH_MBIT:g} Mbit/s: median estimate {median:.2f} Mbit/s "
            f"({median / HIGH_MBIT:.1%} of the shaped rate; before the error margin {raw:.2f} Mbit/s)"
        )
        self.assertLess(abs(median - HIGH_MBIT) / HIGH_MBIT, TOLERANCE)

    def test_dilated_rate_within_15_percent(self) -> None:
        window = self.estimates(self.dilated_t + DILATED_S - 3.0, self.dilated_t + DILATED_S)
        self.assertGreaterEqual(len(window), 8)
        median = statistics.median(r["mbit"] for r in window)
        raw = statistics.median(r["raw"] for r in window)
        print(
            f"[bandwidth_monitor] steady state at {DILATED_MBIT:g} Mbit/s: median estimate {median:.2f} Mbit/s "
            f"({median / DILATED_MBIT:.1%} of the shaped rate; before the error margin {raw:.2f} Mbit/s)"
        )
        self.assertLess(abs(median - DILATED_MBIT) / DILATED_MBIT, TOLERANCE)

    def test_probes_take_about_5_percent_of_the_link_while_inference_runs(self) -> None:
        link_s = [b * 8 / (DILATED_MBIT * 1e6) for b in self.busy_bytes]
        share = [t / self.busy_s for t in link_s]
        print(
            f"[bandwidth_monitor] with inference running at {DILATED_MBIT:g} Mbit/s: probes (and ROS chatter) took "
            f"{share[0]:.1%} of the uplink and {share[1]:.1%} of the downlink over {self.busy_s:.1f} s "
            f"(busy duty {BUSY_DUTY:.0%} of wall time for both directions together)"
        )
        self.assertLess(sum(share), BUSY_DUTY * 1.4)
        window = self.estimates(self.busy_t, self.busy_t + self.busy_s)
        self.assertTrue(all(r["samples"] > 0 for r in window), "probes too rare: the estimate aged out")

    def test_steady_link_keeps_its_plan(self) -> None:
        """At most one plan switch per minute on a steady link: none in the seconds before the step."""
        plans = [p for p in self.records.of("plan") if self.first_estimate + 2.0 <= p["t"] < self.step_t]
        self.assertEqual(plans, [], "plan switches on a steady 40 Mbit/s link")

    def test_step_is_followed_within_about_a_second(self) -> None:
        after = self.estimates(self.step_t, self.dilated_t)
        trace = [(round(r["t"] - self.step_t, 2), round(r["mbit"], 2), round(r["raw"], 2)) for r in after[:15]]
        print(f"[bandwidth_monitor] after the step (s, estimate, raw Mbit/s): {trace}")
        close = [r for r in after if abs(r["mbit"] - LOW_MBIT) / LOW_MBIT < TOLERANCE]
        self.assertTrue(
            close, f"estimate never came within 15% of {LOW_MBIT:g} Mbit/s: {[round(r['mbit'], 2) for r in after]}"
        )
        follow = close[0]["t"] - self.step_t
        print(f"[bandwidth_monitor] step {HIGH_MBIT:g} -> {LOW_MBIT:g} Mbit/s followed in {follow:.2f} s")
        self.assertLess(follow, FOLLOW_LIMIT_S)
        settled = [r["mbit"] for r in after if r["t"] >= close[0]["t"]]
        off = [m for m in settled if abs(m - LOW_MBIT) / LOW_MBIT >= TOLERANCE]
        self.assertLessEqual(len(off), len(settled) // 10, f"estimate left the band after following: {settled}")

    def test_plan_switch_after_the_step(self) -> None:
        plans = self.records.of("plan")
        self.assertTrue(plans, "no PlanSwitch at all (the first bucket is announced too)")
        before = [p for p in plans if p["t"] < self.step_t]
        after = [p for p in plans if self.step_t <= p["t"] < self.dilated_t]
        self.assertTrue(before, "the initial bucket was not announced")
        self.assertTrue(after, "no PlanSwitch after the step")
        low_bucket = LOW_MBIT / 8.0  # MB/s
        self.assertLessEqual(after[-1]["bucket"], low_bucket)
        self.assertLess(after[-1]["bucket"], before[-1]["bucket"])
        self.assertEqual(after[-1]["robot"], ROBOT)
        # the plan book's buckets and predicted latencies, not the plain grid's (predicted_latency_s 0)
        self.assertIn(after[-1]["bucket"], BOOK_BUCKETS)
        self.assertEqual(after[-1]["plan_name"], f"book_{after[-1]['bucket']:g}")
        self.assertAlmostEqual(after[-1]["predicted_latency_s"], 0.1 / after[-1]["bucket"])
        print(
            f"[bandwidth_monitor] plan switch {before[-1]['bucket']:g} -> {after[-1]['bucket']:g} MB/s "
            f"{after[0]['t'] - self.step_t:.2f} s after the step"
        )

    def test_estimates_come_at_a_steady_rate(self) -> None:
        window = self.estimates(self.first_estimate + 1.0, self.step_t)
        gaps = [b["t"] - a["t"] for a, b in zip(window, window[1:])]
        self.assertTrue(gaps)
        self.assertAlmostEqual(statistics.median(gaps), 0.2, delta=0.05)
        self.assertLess(max(gaps), 1.0)


if __name__ == "__main__":
    rostest.rosrun(PKG, "bandwidth_monitor", BandwidthMonitorTest, sys.argv)
