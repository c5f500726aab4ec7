#!/usr/bin/env python3
"""rostest: SCONet through the ROS system equals local inference, and one server serves two robots at once.

robot1 runs agrnav_client (SCONet on a 64x32x64 grid: the full 256x32x256 grid takes ~2.3 s per frame on this
CPU) and robot2 kapao_client, both against one intradp_server holding both replicas. Both feeders run their
20 frames in closed loop at the same time. robot1's feeder first sends a truncated cloud (dropped) and one with
NaN points (skipped, like AGRNav).
"""

import sys
from pathlib import Path

import rostest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import system_testlib as lib

PKG = "intradp_ros"
FRAMES = 20


class AgrnavSystemTest(lib.SystemTestCase):
    tag = "agrnav"

    @classmethod
    def start(cls, system):
        cls.system.start_server([lib.SCONET, lib.KAPAO], ["robot1", "robot2"])
        cls.system.start_client("agrnav", "robot1", lib.SCONET, ["--deadline", "8"])
        cls.system.start_client("kapao", "robot2", lib.KAPAO, ["--deadline", "8"])
        common = [
            "--frames",
            str(FRAMES),
            "--closed",
            "--tiles",
            "--warm-until-distributed",
            "--frame-timeout",
            "20",
            "--wait-ready",
            "120",
        ]
        cls.vox = cls.system.start_feeder("agrnav", "robot1", common + ["--bad"])
        cls.pose = cls.system.start_feeder("kapao", "robot2", common)
        for lines in (cls.vox, cls.pose):
            if not lines.wait_for(lambda lines=lines: lines.of("done") or lines.of("error"), timeout=200):
                raise AssertionError("a feeder did not finish within 200 s")
        cls.ref_vox = lib.LocalReference("agrnav", lib.SCONET, FRAMES)
        cls.ref_pose = lib.LocalReference("kapao", lib.KAPAO, FRAMES)

    @staticmethod
    def frames(lines, kind):
        return {r["frame"]: r for r in lines.of(kind) if r["frame"].startswith("f")}

    def test_sconet_results_equal_local_inference(self):
        self.assertFalse(self.vox.of("error"), self.vox.of("error"))
        res = self.frames(self.vox, "result")
        self.assertEqual(len(res), FRAMES, sorted(res))
        bad, voxels = [], 0
        for fid, got in res.items():
            ref, logits = self.ref_vox.result(lib.frame_index(fid))
            voxels += len(ref["indices"])
            why = lib.compare_voxels(ref, logits, got)
            if why:
                bad.append(f"{fid}: {why}")
        self.assertFalse(bad, bad)
        self.assertGreater(voxels, 0)
        print(f"[agrnav_system] robot1: {len(res)} SCONet frames equal local inference ({voxels} completed voxels)")

    def test_second_robot_kapao_results_equal_local_inference(self):
        res = self.frames(self.pose, "result")
        self.assertEqual(len(res), FRAMES, sorted(res))
        bad = [
            f"{fid}: {why}"
            for fid, got in res.items()
            for why in [lib.compare_kapao(self.ref_pose.result(lib.frame_index(fid))[0], got)]
            if why
        ]
        self.assertFalse(bad, bad)
        print(f"[agrnav_system] robot2: {len(res)} KAPAO frames equal local inference")

    def test_both_robots_ran_distributed_and_stats_add_up(self):
        for name, lines in (("robot1", self.vox), ("robot2", self.pose)):
            stats = list(self.frames(lines, "stats").values())
            self.assertEqual(len(stats), FRAMES, name)
            problems = lib.check_stats(stats, lines.of("tiles"))
            self.assertFalse(problems, f"{name}: {problems}")
            dist = [s for s in stats if s["tiles_up"] > 0 and s["tiles_down"] > 0 and not s["fell_back"]]
            self.assertGreaterEqual(len(dist), FRAMES // 2, f"{name}: most frames should run split")
            lat = sorted(s["latency_s"] for s in dist)
            print(
                f"[agrnav_system] {name}: {len(dist)}/{len(stats)} frames distributed, median latency "
                f"{lat[len(lat) // 2] * 1e3:.0f} ms (both robots at once, noisy 2-core machine)"
            )

    def test_bad_clouds_logged_and_dropped_nan_points_skipped(self):
        bad = {r["frame"] for r in self.vox.of("result") if r["frame"].startswith("bad")}
        self.assertEqual(bad, {"bad_nan"}, "the truncated cloud is dropped; NaN points are skipped like AGRNav")
        log = (self.system.logdir / "client_robot1.log").read_text(errors="replace")
        self.assertIn("dropped frame bad_truncated", log)
        self.assertIn("expected row_step*height", log)
        self.assertRegex(log, r"skipped \d+ NaN/Inf points of \d+ in cloud bad_nan")


if __name__ == "__main__":
    rostest.rosrun(PKG, "agrnav_system", AgrnavSystemTest, sys.argv)
