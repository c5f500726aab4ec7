#!/usr/bin/env python3
"""Test node for the abuse rostest (runs on the robot master inside the Testbed): a node WITHOUT the shared key
that attacks robot <robot>'s session while its client runs frames. Every loop is bounded in count and time.

Attacks, each reported as JSON lines on stdout ({"kind": ...}):
- forged down tiles: for every new request id seen on the robot's up topic, copies of the latest request's down
  tiles with that request id, zeroed payloads and a made-up MAC (what made robots publish 0 poses before);
- session takeover: full handshakes and heartbeats for the robot's name with no proof and with a proof made from
  a wrong key ("takeover" lines with the server's answer);
- unannounced request ids: a burst of up tiles with fresh request ids (no valid MAC), then replays of the robot's
  own authentic up tiles of finished requests (valid MAC, old sequence numbers and request ids).
"""

import argparse
import copy
import json
import sys
import threading
import time

import rospy
from diagnostic_msgs.msg import DiagnosticArray

from intradp_ros.core.session_auth import ClientKeys
from intradp_ros.core.tile import FLAG_START
from intradp_ros.msg import TensorTile
from intradp_ros.srv import Handshake, HandshakeRequest

OUT_LOCK = threading.Lock()
FORGED_SEQ = 1 << 40  # forged tiles claim numbers far ahead of the server's own


def emit(obj):
    with OUT_LOCK:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


class Attacker:
    def __init__(self, robot, forge_limit):
        ns = f"/intradp/{robot}"
        self.robot = robot
        self.lock = threading.Lock()
        self.down_templates = {}  # request id -> its down tiles (the latest complete request's are copied)
        self.up_recorded = []  # authentic up tiles, for replays
        self.seen_up = set()
        self.forged_sent = 0
        self.forge_limit = forge_limit
        self.down_pub = rospy.Publisher(f"{ns}/down", TensorTile, queue_size=1000)
        self.up_pub = rospy.Publisher(f"{ns}/up", TensorTile, queue_size=1000)
        rospy.Subscriber(f"{ns}/down", TensorTile, self.on_down, queue_size=1000, buff_size=64 << 20)
        rospy.Subscriber(f"{ns}/up", TensorTile, self.on_up, queue_size=1000, buff_size=64 << 20)
        self.service = f"{ns}/handshake"
        self.statuses = {}
        rospy.Subscriber("/diagnostics", DiagnosticArray, self.on_diagnostics, queue_size=50)

    def on_diagnostics(self, msg):
        for st in msg.status:
            self.statuses[st.name] = {
                "kind": "diagnostics",
                "name": st.name,
                "hardware_id": st.hardware_id,
                "message": st.message,
                "values": {kv.key: kv.value for kv in st.values},
            }

    def on_down(self, msg):
        if msg.data and msg.seq < FORGED_SEQ:  # the server's tiles (our forged copies come back too)
            with self.lock:
                self.down_templates.setdefault(int(msg.request_id), []).append(msg)
                while len(self.down_templates) > 3:
                    self.down_templates.pop(min(self.down_templates))

    def on_up(self, msg):
        rid = int(msg.request_id)
        with self.lock:
            own = msg.seq >= FORGED_SEQ  # this node's flood
            if not own and len(self.up_recorded) < 200:
                self.up_recorded.append(msg)
            new = rid not in self.seen_up and not own
            self.seen_up.add(rid)
            older = [r for r in self.down_templates if r < rid]
            templates = list(self.down_templates[max(older)]) if older else []
        if new and templates and self.forged_sent < self.forge_limit:
            for t in templates:  # the running request id, zeroed payload, a made-up MAC
                f = copy.deepcopy(t)
                f.request_id = rid
                f.data = bytes(len(t.data))
                f.mac = bytes(16)
                f.seq = t.seq + FORGED_SEQ
                self.down_pub.publish(f)
                self.forged_sent += 1
            emit({"kind": "forged", "request_id": rid, "tiles": len(templates), "t": time.time()})

    def wait_for_requests(self, n, timeout):
        """Until `n` requests went up while down tiles of an earlier one are known (the robot offloads)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not rospy.is_shutdown():
            with self.lock:
                if self.down_templates and len([r for r in self.seen_up if r > min(self.down_templates)]) >= n:
                    return True
            time.sleep(0.1)
        return False

    def takeover(self, attempts, period):
        """Handshakes and heartbeats for the robot's name without its key; returns the server's answers."""
        wrong = ClientKeys(b"not-the-shared-secret-at-all!!!!", self.robot)
        try:
            rospy.wait_for_service(self.service, timeout=10.0)
        except rospy.ROSException:
            emit({"kind": "error", "error": f"no {self.service}"})
            return
        proxy = rospy.ServiceProxy(self.service, Handshake)
        for i in range(attempts):
            hello = wrong.hello()
            reqs = [
                HandshakeRequest(robot=self.robot, model_id="any", client_profile_json="{}"),
                HandshakeRequest(
                    robot=self.robot, model_id="any", client_profile_json="{}", nonce=hello.nonce, proof=hello.proof
                ),
                HandshakeRequest(robot=self.robot, model_id="any"),  # a heartbeat without proof
            ]
            for req in reqs:
                try:
                    r = proxy(req)
                    emit({"kind": "takeover", "i": i, "accepted": bool(r.accepted), "error": r.error[:200]})
                except (rospy.ServiceException, rospy.ROSException, OSError) as e:
                    emit({"kind": "takeover", "i": i, "accepted": None, "error": str(e)[:200]})
            time.sleep(period)

    def flood(self, count):
        """`count` up tiles with fresh request ids (no valid MAC), then replays of recorded authentic up tiles."""
        base = int(time.time() * 1000) * 1000 + 10**9  # above the robot's own ids
        for i in range(count):
            self.up_pub.publish(
                TensorTile(
                    robot=self.robot, request_id=base + i, plan_id=1, flags=FLAG_START, dtype="uint8", seq=FORGED_SEQ
                )
            )
        with self.lock:
            replays = list(self.up_recorded)
        for m in replays:
            self.up_pub.publish(m)
        emit({"kind": "flood", "fresh": count, "replayed": len(replays), "t": time.time()})


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--robot", default="robot1")
    p.add_argument(
        "--after-requests", type=int, default=2, help="distributed requests seen before the handshake and flood attacks"
    )
    p.add_argument("--wait", type=float, default=120.0, help="longest wait for them (s)")
    p.add_argument("--takeovers", type=int, default=8)
    p.add_argument("--flood", type=int, default=200)
    p.add_argument("--forge-limit", type=int, default=2000)
    p.add_argument("--duration", type=float, default=180.0, help="keep forging down tiles at most this long (s)")
    args = p.parse_args(rospy.myargv()[1:])
    rospy.init_node("abuse_attacker", anonymous=True)
    a = Attacker(args.robot, args.forge_limit)
    emit({"kind": "ready", "t": time.time()})
    end = time.monotonic() + args.duration
    if not a.wait_for_requests(args.after_requests, args.wait):
        emit({"kind": "error", "error": f"the robot never offloaded {args.after_requests} requests"})
        return 1
    emit({"kind": "attacking", "t": time.time()})
    a.flood(args.flood)
    a.takeover(args.takeovers, 0.5)
    time.sleep(2.5)  # one more diagnostics period of both nodes
    for st in list(a.statuses.values()):
        emit(st)
    emit({"kind": "attacks_done", "t": time.time()})  # forging goes on until the end
    while time.monotonic() < end and not rospy.is_shutdown():
        time.sleep(0.2)
    emit({"kind": "done", "forged_sent": a.forged_sent, "t": time.time()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
