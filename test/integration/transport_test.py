#!/usr/bin/env python3
"""rostest: TensorTile transport between the robot and server masters of a Testbed.

Inside a Testbed (two namespaces, tbf 90 Mbit/s each way, a roscore on each side, the master bridge) a 4 MB tile
published on the robot master reaches the echo node on the server master and comes back; the TCP connections
that carried it join the two node processes (not the bridge); the median one-way time of a 4 MB tile is within
20% of 4 MB / 90 Mbit/s. rostest's own master is only the harness. Needs root (skipped with the reason otherwise).
"""

import os
import statistics
import subprocess
import sys
import unittest

import rostest

PKG = "intradp_ros"
RATE_MBIT = 90.0
TILE_BYTES = 4 << 20
TILES = 5


class TransportTest(unittest.TestCase):
    tb = None

    @classmethod
    def setUpClass(cls) -> None:
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root: the Testbed builds network namespaces, tc qdiscs and cgroups")
        from intradp_ros.eval.nodes import read_json_lines, script_argv, start_bridge
        from intradp_ros.eval.testbed import Testbed

        cls.tb = Testbed(rate_mbit=RATE_MBIT, name="tport")
        try:
            cls.tb.start_masters()
            cls.bridge = start_bridge(cls.tb, "robot")
            cls.echo = cls.tb.spawn(
                "server",
                script_argv("tile_echo_node", "server", "--mode", "echo"),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
            )
            cls.sender = cls.tb.spawn(
                "robot",
                script_argv(
                    "tile_echo_node",
                    "sender",
                    "--mode",
                    "pingpong",
                    "--sizes",
                    str(TILE_BYTES),
                    "--repeats",
                    str(TILES),
                    "--hold",
                ),
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.PIPE,
                text=True,
            )
            cls.records = list(read_json_lines(cls.sender, timeout=60))
        except BaseException:
            cls.tb.down()
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        if cls.tb is not None:
            try:
                cls.sender.stdin.close()
            except OSError:
                pass
            cls.tb.down()

    def tiles(self):
        return [r for r in self.records if r.get("kind") == "tile"]

    def test_tile_round_trip(self) -> None:
        errors = [r["error"] for r in self.records if r.get("kind") == "error"]
        self.assertEqual(errors, [])
        tiles = self.tiles()
        self.assertEqual(len(tiles), TILES, f"records: {self.records}")
        for r in tiles:
            self.assertEqual(r["bytes"], TILE_BYTES)
            self.assertEqual(r["answer_bytes"], TILE_BYTES)  # the echo brought the whole tile back
            self.assertGreater(r["up_s"], 0)
            self.assertGreater(r["down_s"], 0)

    def test_data_socket_joins_the_node_processes(self) -> None:
        from intradp_ros.eval.sockets import tcp_connections

        robot_side = tcp_connections(self.tb, "robot")
        server_side = tcp_connections(self.tb, "server")
        server_owner = {(c.local, c.peer): c.pids for c in server_side}
        payload = TILES * TILE_BYTES
        # The connections over the link that carried the tiles: at least the payload each way.
        up = [c for c in robot_side if c.peer[0] == self.tb.server.ip and c.bytes_acked >= payload]
        down = [c for c in robot_side if c.peer[0] == self.tb.server.ip and c.bytes_received >= payload]
        self.assertEqual(len(up), 1, f"robot-side connections: {robot_side}")
        self.assertEqual(len(down), 1, f"robot-side connections: {robot_side}")
        for conn in up + down:
            self.assertEqual(conn.pids, (self.sender.pid,), "robot end must belong to the sender node")
            self.assertEqual(
                server_owner.get((conn.peer, conn.local)), (self.echo.pid,), "server end must belong to the echo node"
            )
        # and the bridge carried no payload
        bridge_bytes = sum(c.bytes_acked + c.bytes_received for c in robot_side if self.bridge.pid in c.pids)
        self.assertLess(bridge_bytes, TILE_BYTES // 4)

    def test_one_way_time_matches_the_shaped_rate(self) -> None:
        ideal = TILE_BYTES * 8 / (RATE_MBIT * 1e6)
        median = statistics.median(r["up_s"] for r in self.tiles())
        self.assertLess(
            abs(median - ideal) / ideal,
            0.20,
            f"median one-way {median * 1e3:.1f} ms vs {ideal * 1e3:.1f} ms ideal at {RATE_MBIT:g} Mbit/s",
        )


if __name__ == "__main__":
    rostest.rosrun(PKG, "transport", TransportTest, sys.argv)
