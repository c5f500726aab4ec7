#!/usr/bin/env python3
"""rostest: KAPAO-S (256x320) distributed through the ROS system equals local inference, frame by frame.

Testbed with the bridge; the server solves its plan book (server 4x faster than the robot, derived profile);
the client runs mode intradp at the 50 MB/s bucket. The feeder first sends bad images (an unsupported
encoding, a wrong size with expected_size set, a truncated buffer) and malformed tiles (payload size not
matching the shape, an unknown plan id) on both tile topics, then 20 frames in closed loop.
"""

import sys
import time
from pathlib import Path

import rostest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import system_testlib as lib

PKG = "intradp_ros"
FRAMES = 20


class KapaoSystemTest(lib.SystemTestCase):
    tag = "kapao"

    @classmethod
    def start(cls, system):
        # plan_cache_tolerance 3 (profiles within 4x reuse the book): on this shared 2-core machine the client's
        # calibration factor moved 2.36 -> 0.93 between two starts (other jobs' load); the default 0.25 covers the
        # run-to-run drift of an unloaded robot (1.017 vs 1.143 measured) and is unit-tested
        cls.system.start_server([lib.KAPAO], ["robot1"], ["--plan-cache-tolerance", "3"])
        cls.system.start_client("kapao", "robot1", lib.KAPAO, ["--expected-size", "480,640", "--deadline", "5"])
        cls.lines = cls.system.start_feeder(
            "kapao",
            "robot1",
            [
                "--frames",
                str(FRAMES),
                "--closed",
                "--tiles",
                "--bad",
                "--bad-tiles",
                "--warm-until-distributed",
                "--switch-bucket",
                "1",
                "--frame-timeout",
                "15",
                "--wait-ready",
                "90",
                "--encodings",
            ],
        )
        # the first frames may run locally while the handshake completes; wait for the run to end
        if not cls.lines.wait_for(lambda: cls.lines.of("done") or cls.lines.of("error"), timeout=150):
            raise AssertionError("feeder did not finish within 150 s")
        time.sleep(1.0)
        # a client restart against the warm server: its calibration factor differs run to run, the server reuses
        # the cached plan book (profiles within plan_cache_tolerance), so it is accepted in seconds
        old = system.procs["client_robot1"]
        old.terminate()
        old.wait(15)
        cls.restart_began = time.time()
        system.start_client("kapao", "robot1", lib.KAPAO, ["--expected-size", "480,640"], tag="client_robot1_restart")
        cls.restart = system.start_feeder(
            "kapao", "robot1", ["--until-status", "plan_book=received", "--wait-ready", "150"], tag="feeder_restart"
        )
        cls.restart.wait_for(lambda: cls.restart.of("done") or cls.restart.of("error"), timeout=170)
        cls.ref = lib.LocalReference("kapao", lib.KAPAO, FRAMES)

    def results(self):
        return {r["frame"]: r for r in self.lines.of("result") if r["frame"].startswith("f")}

    def test_every_frame_equals_local_inference(self):
        self.assertFalse(self.lines.of("error"), self.lines.of("error"))
        res = self.results()
        self.assertEqual(len(res), FRAMES, f"results for {sorted(res)}")
        bad, total_poses = lib.kapao_mismatches(self.ref, res)
        self.assertFalse(bad, bad)
        self.assertGreater(total_poses, 0, "the comparison is empty: no poses at these thresholds")
        print(f"[kapao_system] {len(res)} frames equal local inference ({total_poses} poses in all)")

    def test_frames_ran_distributed_and_stats_add_up(self):
        stats = [s for s in self.lines.of("stats") if s["frame"].startswith("f")]
        self.assertEqual(len(stats), FRAMES)
        problems = lib.check_stats(stats, self.lines.of("tiles"))
        self.assertFalse(problems, problems)
        distributed = [s for s in stats if s["tiles_up"] > 0 and s["tiles_down"] > 0 and not s["fell_back"]]
        self.assertGreaterEqual(len(distributed), FRAMES // 2, "most frames should run split with the server")
        self.assertTrue(all(s["server_compute_s"] > 0 for s in distributed))
        lat = sorted(s["latency_s"] for s in distributed)
        print(
            f"[kapao_system] {len(distributed)}/{len(stats)} frames distributed; median latency "
            f"{lat[len(lat) // 2] * 1e3:.0f} ms (noisy 2-core machine)"
        )

    def test_plan_switch_applies_on_the_next_frame(self):
        from intradp_ros.core.plan_book import PlanBook

        books = list((Path(self.system.cache) / "plan_books").glob("*.json"))
        self.assertEqual(len(books), 1, books)
        book = PlanBook.from_json(books[0].read_text(), lib.served_graph("kapao", lib.KAPAO))
        stats = {s["frame"]: s for s in self.lines.of("stats")}
        before = {stats[f]["plan_id"] for f in stats if f.startswith("f")}
        after = {stats[f]["plan_id"] for f in stats if f.startswith("g")}
        self.assertEqual(before, {book.plan_for("intradp", 50.0).plan_id}, "frames ran the 50 MB/s bucket's plan")
        self.assertEqual(after, {book.plan_for("intradp", 1.0).plan_id}, "after the switch: the 1 MB/s plan")
        print(
            f"[kapao_system] PlanSwitch to 1 MB/s: plan {book.plan_for('intradp', 50.0).name} -> "
            f"{book.plan_for('intradp', 1.0).name} from the next frame"
        )

    def test_bad_input_is_logged_and_dropped(self):
        self.assertTrue(self.lines.of("warm") and self.lines.of("warm")[0]["distributed"], "never ran distributed")
        res = self.lines.of("result")
        self.assertFalse([r for r in res if r["frame"].startswith("bad")], "a bad frame produced a result")
        log = (self.system.logdir / "client_robot1.log").read_text(errors="replace")
        for frame, text in (
            ("bad_encoding", "encoding '32FC1' is not supported"),
            ("bad_size", "expected 640x480"),
            ("bad_truncated", "expected step*height"),
        ):
            self.assertIn(f"dropped frame {frame}", log)
            self.assertIn(text, log)
        self.assertIn("dropped tile on /intradp/robot1/down", log)

    def test_every_camera_encoding_gets_poses(self):
        from intradp_ros.models.image_encodings import SUPPORTED_ENCODINGS

        res = {r["frame"]: r for r in self.lines.of("result") if r["frame"].startswith("enc_")}
        missing = [e for e in SUPPORTED_ENCODINGS if f"enc_{e}" not in res]
        self.assertFalse(missing, f"no result for encodings {missing}")
        ref, _det = self.ref.result(0)
        for enc in ("rgb8", "bgr8", "rgba8", "bgra8"):  # lossless: the same poses as the rgb8 frame
            self.assertIsNone(lib.compare_kapao(ref, res[f"enc_{enc}"]), enc)
        print(f"[kapao_system] {len(res)} encodings through the client: {', '.join(sorted(res))}")

    def test_diagnostics_show_the_client_and_server_with_drop_counts(self):
        diags = {d["name"]: d for d in self.lines.of("diagnostics")}
        client = [d for d in diags.values() if d["hardware_id"] == "robot1" and "session" in d["values"]]
        self.assertTrue(client, f"no client status on /diagnostics: {sorted(diags)}")
        values = client[0]["values"]
        self.assertEqual(values["plan_book"], "received")
        self.assertEqual(values["dropped_unsupported_encoding"], "1", values)
        self.assertEqual(values["dropped_malformed"], "2", values)  # wrong size, truncated
        self.assertEqual(values["weights"], "random (seeded)")
        server = [d for d in diags.values() if d["hardware_id"] == "server" and "sessions" in d["values"]]
        self.assertTrue(server, f"the server's status did not reach the robot side: {sorted(diags)}")
        self.assertIn("robot1", server[0]["values"]["sessions"])
        stats = [s for s in self.lines.of("stats") if s["frame"].startswith("enc_")]
        self.assertTrue(stats and all(s["dropped_bad"] == 3 for s in stats), stats[:1])

    def test_client_restart_against_the_warm_server_is_accepted_in_seconds(self):
        status = self.restart.of("status")
        self.assertTrue(status and status[0]["found"], "the restarted client never reported plan_book=received")
        took = status[0]["t"] - self.restart_began
        log = (self.system.logdir / "server.log").read_text(errors="replace")
        self.assertEqual(log.count("solved in"), 1, "the restart must not solve the plan book again")
        self.assertIn("from cache", log)
        self.assertLess(took, 60.0, "a restart against a warm server must take seconds, not minutes")
        print(
            f"[kapao_system] client restart against the warm server: plan book received {took:.1f} s after the "
            "start (load, cached profile, 3 calibration frames, handshake; noisy 2-core machine)"
        )

    def test_bad_tiles_dropped_and_nodes_keep_working(self):
        log = (self.system.logdir / "server.log").read_text(errors="replace")
        self.assertIn("dropped tile on /intradp/robot1/up", log)
        # request 8 is below the robot's own (wall-clock) ids: refused as never announced before its plan is looked at
        self.assertIn("refused a tile of request 8: not announced in this session", log)
        after = [r for r in self.lines.of("result") if r["frame"].startswith("g")]
        self.assertEqual(len(after), 2, "frames after the bad tiles got no result")
        for got in after:
            self.assertIsNone(lib.compare_kapao(self.ref.result(lib.frame_index(got["frame"]))[0], got))


if __name__ == "__main__":
    rostest.rosrun(PKG, "kapao_system", KapaoSystemTest, sys.argv)
