#!/usr/bin/env python3
"""Test node for bandwidth_monitor.test: prints every BandwidthEstimate and PlanSwitch of one robot as a JSON line
(with this host's monotonic receive time), so a test outside the robot's namespace can read them from stdout.

Usage: bandwidth_listener.py ROBOT [--lifetime S] [--plan-book FILE]
(exits after S seconds, default 120, or when stdin closes). With --plan-book it also publishes FILE latched on
/intradp/ROBOT/plan_book, as the client does with the plan book the server sent it in the handshake.
A line "frames HZ" on stdin starts publishing small InferenceStats at HZ (inference running, frames too small
for a passive sample, so the monitor probes under its busy duty cycle); "frames 0" stops them.
"""

import argparse
import json
import sys
import threading
import time

import rospy
from std_msgs.msg import String

from intradp_ros.msg import BandwidthEstimate, InferenceStats, PlanSwitch


def emit(record: dict) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("robot")
    p.add_argument("--lifetime", type=float, default=120.0)
    p.add_argument("--plan-book", default="")
    args = p.parse_args(rospy.myargv()[1:])
    rospy.init_node("bandwidth_listener", anonymous=True, disable_signals=True)
    ns = f"/intradp/{args.robot}"

    def on_estimate(m: BandwidthEstimate) -> None:
        emit(
            {
                "kind": "estimate",
                "t": time.monotonic(),
                "mbit": m.mbit_per_s,
                "raw": m.raw_mbit_per_s,
                "last": m.last_sample_mbit_per_s,
                "margin": m.error_margin,
                "samples": m.samples,
                "probe_samples": m.probe_samples,
                "passive_samples": m.passive_samples,
            }
        )

    def on_plan(m: PlanSwitch) -> None:
        emit(
            {
                "kind": "plan",
                "t": time.monotonic(),
                "bucket": m.bucket_mbyte_per_s,
                "plan_id": m.plan_id,
                "plan_name": m.plan_name,
                "estimate": m.estimate_mbit_per_s,
                "robot": m.robot,
                "mode": m.mode,
                "predicted_latency_s": m.predicted_latency_s,
            }
        )

    rospy.Subscriber(f"{ns}/bandwidth", BandwidthEstimate, on_estimate, queue_size=50)
    rospy.Subscriber(f"{ns}/plan", PlanSwitch, on_plan, queue_size=10)
    if args.plan_book:
        with open(args.plan_book) as f:
            book_pub = rospy.Publisher(f"{ns}/plan_book", String, queue_size=1, latch=True)
            book_pub.publish(String(data=f.read()))
    stats_pub = rospy.Publisher(f"{ns}/stats", InferenceStats, queue_size=10)
    frame_hz = [0.0]
    stdin_closed = threading.Event()

    def fake_frames() -> None:
        request_id = 0
        while not stdin_closed.wait(1.0 / frame_hz[0] if frame_hz[0] > 0 else 0.05):
            if frame_hz[0] > 0:
                request_id += 1
                stats_pub.publish(
                    InferenceStats(
                        robot=args.robot, request_id=request_id, latency_s=0.2, transmit_s=0.05, bytes_up=1000
                    )
                )

    emit({"kind": "ready", "t": time.monotonic()})

    def watch_stdin() -> None:
        try:
            for line in sys.stdin:
                parts = line.split()
                if len(parts) == 2 and parts[0] == "frames":
                    frame_hz[0] = max(0.0, min(float(parts[1]), 50.0))
        except (OSError, ValueError):
            pass
        stdin_closed.set()

    threading.Thread(target=fake_frames, daemon=True).start()

    threading.Thread(target=watch_stdin, daemon=True).start()
    stdin_closed.wait(args.lifetime)
    rospy.signal_shutdown("listener done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
