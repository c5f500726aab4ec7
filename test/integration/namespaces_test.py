#!/usr/bin/env python3
"""rostest: `<group ns>` runs two robots' clients without remapping (issue 14, names relative to the namespace).

namespaces.test starts torchvision_client twice, in namespaces r1 and r2, with the same node name and the default
robot name (robot1) and topics. Frames published on /r1/camera/image_raw must give results and InferenceStats on
/r1/intradp/robot1/{output,stats} and nothing in r2 (and nothing at the root's /intradp/robot1/stats); then the same
for r2. Every wait is bounded in time.
"""

import threading
import time
import unittest

import numpy as np
import rospy
import rostest
from sensor_msgs.msg import Image
from std_msgs.msg import Float32MultiArray

from intradp_ros.msg import InferenceStats

PKG = "intradp_ros"
NAMESPACES = ("r1", "r2")
READY_S = 180.0  # both clients load resnet18 and profile it on a shared 2-core machine
FRAME_PERIOD_S = 0.5


def image(seq: int) -> Image:
    rgb = np.random.default_rng(seq).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    msg = Image(height=48, width=64, encoding="rgb8", is_bigendian=0, step=64 * 3, data=rgb.tobytes())
    msg.header.seq, msg.header.frame_id = seq, "camera"
    msg.header.stamp = rospy.Time.now()
    return msg


class Heard:
    """Messages heard on one topic (thread-safe count and last one)."""

    def __init__(self, topic: str, msg_type: type) -> None:
        self.count, self.last, self.lock = 0, None, threading.Lock()
        self.sub = rospy.Subscriber(topic, msg_type, self._on, queue_size=20)

    def _on(self, msg: object) -> None:
        with self.lock:
            self.count, self.last = self.count + 1, msg


class NamespacesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        rospy.init_node("namespaces_test")
        cls.images = {ns: rospy.Publisher(f"/{ns}/camera/image_raw", Image, queue_size=1) for ns in NAMESPACES}
        cls.stats = {ns: Heard(f"/{ns}/intradp/robot1/stats", InferenceStats) for ns in NAMESPACES}
        cls.outputs = {ns: Heard(f"/{ns}/intradp/robot1/output", Float32MultiArray) for ns in NAMESPACES}
        cls.root_stats = Heard("/intradp/robot1/stats", InferenceStats)

    def feed_until_stats(self, ns: str) -> None:
        """Publish frames into `ns` until its client's stats arrive (bounded by READY_S)."""
        deadline = time.monotonic() + READY_S
        seq = 0
        while self.stats[ns].count == 0 and time.monotonic() < deadline and not rospy.is_shutdown():
            self.images[ns].publish(image(seq))
            seq += 1
            time.sleep(FRAME_PERIOD_S)
        self.assertGreater(self.stats[ns].count, 0, f"no InferenceStats on /{ns}/intradp/robot1/stats in {READY_S} s")

    def test_each_namespace_keeps_its_own_frames_results_and_stats(self) -> None:
        self.feed_until_stats("r1")
        time.sleep(1.0)  # anything r1's frames wrongly caused elsewhere would have arrived by now
        self.assertGreater(self.outputs["r1"].count, 0)
        self.assertEqual(self.stats["r2"].count, 0, "r1's frames produced stats in r2")
        self.assertEqual(self.outputs["r2"].count, 0, "r1's frames produced results in r2")
        self.feed_until_stats("r2")
        self.assertGreater(self.outputs["r2"].count, 0)
        self.assertEqual(self.root_stats.count, 0, "a namespaced client published at the root")
        for ns in NAMESPACES:
            last = self.stats[ns].last
            self.assertEqual((last.robot, last.mode, last.error), ("robot1", "device_only", ""))
            self.assertFalse(last.fell_back_local)
        published = {name for name, _type in rospy.get_published_topics()}
        self.assertIn("/r1/intradp/robot1/stats", published)
        self.assertIn("/r2/intradp/robot1/stats", published)
        self.assertNotIn("/intradp/robot1/stats", published)


if __name__ == "__main__":
    rostest.rosrun(PKG, "namespaces", NamespacesTest)
