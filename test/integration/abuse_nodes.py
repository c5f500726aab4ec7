#!/usr/bin/env python3
"""Attacker nodes of the abuse_load rostest (each bounded in time; prints JSON lines on stdout).

stall TOPIC SECONDS      a raw TCPROS subscriber of TOPIC that reads the connection header and then never reads
                         (small receive buffer), held SECONDS, then closed
handshakes ROBOT         oversized and junk handshakes on /intradp/ROBOT/handshake; one line per answer
bigtile TOPIC MB         one TensorTile of MB megabytes published on TOPIC once a subscriber is connected
"""

import json
import socket
import sys
import time
import xmlrpc.client

import rosgraph
import rosgraph.network
import rospy

from intradp_ros.msg import TensorTile
from intradp_ros.srv import Handshake, HandshakeRequest


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def stall(topics, seconds):
    """Connect to every publisher of each of `topics` (comma-separated) like a subscriber would, never read."""
    caller = "/abuse_stall"
    master = rosgraph.Master(caller)
    socks = []
    for topic in topics.split(","):
        for node in publishers(master, topic):
            s = stall_one(master, caller, node, topic)
            if s is not None:
                socks.append(s)
                emit({"kind": "stalling", "topic": topic, "publisher": node, "t": time.time()})
    time.sleep(seconds)
    for s in socks:
        s.close()
    emit({"kind": "stall_done", "connections": len(socks), "t": time.time()})


def publishers(master, topic):
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline:
        pubs = [p for t, nodes in master.getSystemState()[0] if t == topic for p in nodes]
        if pubs:
            return pubs
        time.sleep(0.2)
    return []


def stall_one(master, caller, node, topic):
    """A TCPROS subscriber connection to `node`'s `topic` that reads the header and nothing after."""
    uri = master.lookupNode(node)
    code, _msg, proto = xmlrpc.client.ServerProxy(uri).requestTopic(caller, topic, [["TCPROS"]])
    if code != 1:
        return None
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((proto[1], proto[2]))
    header = {
        "callerid": caller,
        "topic": topic,
        "md5sum": TensorTile._md5sum,
        "type": TensorTile._type,
        "tcp_nodelay": "1",
    }
    s.sendall(rosgraph.network.encode_ros_handshake_header(header))
    s.recv(4096)  # the publisher's header; never read again
    return s


def handshakes(robot):
    rospy.init_node("abuse_handshakes", anonymous=True, disable_signals=True)
    name = f"/intradp/{robot}/handshake"
    rospy.wait_for_service(name, timeout=20.0)
    call = rospy.ServiceProxy(name, Handshake)
    base = {"head": "candidates", "input_size": [256, 320]}
    cases = [("model_id_10mb", HandshakeRequest(robot=robot, model_id="kapao_s6{" + "x" * (10 << 20)))]
    for i in range(5):  # five option variants with wrong fingerprints: at most one may be built
        opts = dict(base, candidate_conf=0.1 * (i + 1))
        mid = "kapao_s6" + json.dumps(opts, sort_keys=True, separators=(",", ":"))
        cases.append((f"variant{i}", HandshakeRequest(robot=robot, model_id=mid, weights_fingerprint="0" * 32)))
    cases += [
        ("junk_head", HandshakeRequest(robot=robot, model_id='kapao_s6{"head":"evil","input_size":[256,320]}')),
        ("junk_robot", HandshakeRequest(robot="x" * 100000, model_id="kapao_s6")),
        ("huge_profile", HandshakeRequest(robot=robot, model_id="kapao_s6", client_profile_json="{" * (9 << 20))),
    ]
    for tag, req in cases:
        t0 = time.monotonic()
        try:
            r = call(req)
            emit({"kind": "handshake", "case": tag, "accepted": r.accepted, "error_len": len(r.error),
                  "error": r.error[:300], "s": time.monotonic() - t0})  # fmt: skip
        except rospy.ServiceException as e:
            emit({"kind": "handshake", "case": tag, "accepted": False, "error_len": -1, "error": str(e)[:300]})
    emit({"kind": "handshakes_done", "t": time.time()})


def bigtile(topic, mb):
    rospy.init_node("abuse_bigtile", anonymous=True, disable_signals=True)
    pub = rospy.Publisher(topic, TensorTile, queue_size=None, tcp_nodelay=True)
    deadline = time.monotonic() + 20.0
    while pub.get_num_connections() == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    n = int(mb) << 20
    msg = TensorTile(robot=topic.split("/")[-2], request_id=424242, plan_id=1, node_id=0, axis=2, row_start=0,
                     row_stop=1, dtype="uint8", shape=[1, 3, 1, n // 3], codec=0, flags=0, data=bytes(n))  # fmt: skip
    t0 = time.time()
    if pub.get_num_connections():
        pub.publish(msg)
    emit({"kind": "bigtile_sent", "bytes": n, "connections": pub.get_num_connections(), "t0": t0, "t": time.time()})
    time.sleep(2.0)
    pub.unregister()


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "stall":
        stall(sys.argv[2], float(sys.argv[3]))
    elif mode == "handshakes":
        handshakes(sys.argv[2])
    elif mode == "bigtile":
        bigtile(sys.argv[2], float(sys.argv[3]))
    else:
        raise SystemExit(f"unknown mode {mode}")
