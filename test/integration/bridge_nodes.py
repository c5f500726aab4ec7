#!/usr/bin/env python3
"""Small nodes the bridge rostest starts inside the testbed namespaces (they print what they see on stdout).

bridge_nodes.py talker TOPIC          publish std_msgs/String "<seq>" at 20 Hz (bounded: stops after 10 min)
bridge_nodes.py readvertiser TOPIC    publish "<generation>:<seq>" at 20 Hz; each "cycle" line on stdin tears the
                                      publisher down and advertises it again at once (same node, same URI) and
                                      prints "CYCLED <generation>" (bounded like talker)
bridge_nodes.py listener TOPIC        print "RECV <data>" for every message
bridge_nodes.py echo IN OUT           republish every message of IN on OUT
bridge_nodes.py service NAME          provide intradp_ros/BandwidthProbe (answers received_bytes)
bridge_nodes.py agent                 JSON lines on stdin -> JSON lines on stdout:
    {"op": "state"}                               getSystemState of ROS_MASTER_URI
    {"op": "call", "service": NAME, "bytes": N}   call the probe service once (3 s timeout)
"""

import json
import os
import sys
import xmlrpc.client

import rospy
from std_msgs.msg import String


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def talker(topic: str) -> None:
    rospy.init_node("talker", anonymous=True, disable_signals=False)
    pub = rospy.Publisher(topic, String, queue_size=10, tcp_nodelay=True)
    _say("READY")
    rate = rospy.Rate(20)
    for seq in range(20 * 600):
        if rospy.is_shutdown():
            break
        pub.publish(String(data=str(seq)))
        rate.sleep()


def readvertiser(topic: str) -> None:
    import queue
    import threading

    rospy.init_node("readvertiser", anonymous=True)
    commands: queue.Queue[str] = queue.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            commands.put(line.strip())

    threading.Thread(target=read_stdin, name="stdin", daemon=True).start()
    pub = rospy.Publisher(topic, String, queue_size=10, tcp_nodelay=True)
    generation = 0
    _say("READY")
    rate = rospy.Rate(20)
    for seq in range(20 * 600):
        if rospy.is_shutdown():
            break
        try:
            command = commands.get_nowait()
        except queue.Empty:
            command = ""
        if command == "cycle":
            pub.unregister()  # unregisters from the master and closes every subscriber connection
            pub = rospy.Publisher(topic, String, queue_size=10, tcp_nodelay=True)  # same node URI
            generation += 1
            _say(f"CYCLED {generation}")
        pub.publish(String(data=f"{generation}:{seq}"))
        rate.sleep()


def listener(topic: str) -> None:
    rospy.init_node("listener", anonymous=True)
    rospy.Subscriber(topic, String, lambda m: _say(f"RECV {m.data}"), tcp_nodelay=True)
    _say("READY")
    rospy.spin()


def echo(topic_in: str, topic_out: str) -> None:
    rospy.init_node("echo", anonymous=True)
    pub = rospy.Publisher(topic_out, String, queue_size=10, tcp_nodelay=True)
    rospy.Subscriber(topic_in, String, lambda m: pub.publish(m), tcp_nodelay=True)
    _say("READY")
    rospy.spin()


def service(name: str) -> None:
    from intradp_ros.srv import BandwidthProbe, BandwidthProbeResponse

    rospy.init_node("probe_service", anonymous=True)
    rospy.Service(
        name,
        BandwidthProbe,
        lambda req: BandwidthProbeResponse(received_bytes=len(req.payload), server_receive_stamp=0.0, payload=b""),
    )
    _say("READY")
    rospy.spin()


def agent() -> None:
    from intradp_ros.srv import BandwidthProbe

    master = xmlrpc.client.ServerProxy(os.environ["ROS_MASTER_URI"])
    _say("READY")
    for line in sys.stdin:
        try:
            cmd = json.loads(line)
            if cmd["op"] == "state":
                code, msg, state = master.getSystemState("/bridge_test_agent")
                _say(json.dumps({"ok": code == 1, "state": state}))
            elif cmd["op"] == "call":
                rospy.wait_for_service(cmd["service"], timeout=3.0)
                proxy = rospy.ServiceProxy(cmd["service"], BandwidthProbe)
                resp = proxy(payload=b"x" * int(cmd["bytes"]), reply_bytes=0)
                _say(json.dumps({"ok": True, "received_bytes": resp.received_bytes}))
            else:
                _say(json.dumps({"ok": False, "error": f"unknown op {cmd['op']}"}))
        except Exception as err:  # noqa: BLE001 -- report, keep serving
            _say(json.dumps({"ok": False, "error": f"{type(err).__name__}: {err}"}))


if __name__ == "__main__":
    args = rospy.myargv(sys.argv)[1:]
    roles = {
        "talker": talker,
        "readvertiser": readvertiser,
        "listener": listener,
        "echo": echo,
        "service": service,
        "agent": agent,
    }
    if not args or args[0] not in roles:
        sys.exit(__doc__)
    roles[args[0]](*args[1:])
