#!/usr/bin/env python3
"""rostest: `IntraDP(server="ros"); idp.start_client(model); model(x)` against a real intradp_server node.

Testbed with the bridge; the server serves KAPAO-S at 256x320 (seed 6, lib.KAPAO); the robot-side script
(api_remote_client.py) builds the same model with intradp_ros.models.build, runs 3 frames in mode intradp (the
API's remote default, at the 50 MB/s bucket, where the book offloads) and 3 in server_only through the API and
compares each with its own local forward. It first checks that a master
URI where nothing answers raises RemoteUnavailable within a few seconds.
"""

import subprocess
import sys
import time
from pathlib import Path

import rostest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import system_testlib as lib

PKG = "intradp_ros"
FRAMES = 3
MODES = ("intradp", "server_only")
RUN_TIMEOUT = 80.0  # setup and both robot-side runs: server load, handshakes (profile + plan book), 6 frames
REL_TOL = 1e-4


class ApiRemoteTest(lib.SystemTestCase):
    tag = "apirem"

    @classmethod
    def start(cls, system):
        t0 = cls.setup_began
        tb = cls.system.tb
        cls.system.start_server([lib.KAPAO], ["robot1"])
        # inside the robot namespace nothing listens on this port (its master is on tb.robot.master_port)
        cls.unreachable = f"http://{tb.robot.ip}:{tb.robot.master_port + 7}"
        size = lib.KAPAO["config"]["input_size"]
        cls.lines = []
        # one process per mode, as an application would run: a second session in the same process right after
        # stop() re-registers the same node's tile publisher faster than the bridge polls (see the report)
        for i, mode in enumerate(MODES):
            argv = [
                sys.executable,
                str(HERE / "api_remote_client.py"),
                "--robot",
                "robot1",
                "--model",
                lib.KAPAO["config"]["name"],
                "--input-size",
                f"{size[0]},{size[1]}",
                "--seed",
                str(lib.KAPAO["config"]["seed"]),
                "--frames",
                str(FRAMES),
                "--modes",
                mode,
                "--timeout",
                "40",
                "--bandwidth",
                "50",
            ]
            if i == 0:
                argv += ["--unreachable", cls.unreachable]
            p = tb.spawn(
                "robot",
                argv,
                env=cls.system.env,
                stdout=subprocess.PIPE,
                stderr=cls.system.log(f"api_client_{mode}_err"),
                stdin=subprocess.DEVNULL,
                text=True,
            )
            lines = lib.Lines(p, cls.system.logdir / f"api_client_{mode}.jsonl")
            cls.lines.append(lines)
            left = RUN_TIMEOUT - (time.monotonic() - t0)
            if not lines.wait_for(
                lambda lines=lines, p=p: lines.of("done") or lines.of("error") or p.poll() is not None,
                timeout=max(1.0, left),
            ):
                raise AssertionError(
                    f"api_remote_client.py ({mode}) did not finish within {RUN_TIMEOUT:.0f} s "
                    f"of setup (logs in {cls.system.logdir})"
                )
            lines.wait_for(lambda p=p: p.poll() is not None, timeout=5.0)
        print(f"[api_remote] robot-side script finished {time.monotonic() - t0:.1f} s after setup began")

    def of(self, kind):
        return [r for lines in self.lines for r in lines.of(kind)]

    def frames(self, mode):
        return [r for r in self.of("frame") if r["mode"] == mode]

    def test_script_ran_to_the_end(self):
        self.assertFalse(self.of("error"), self.of("error"))
        self.assertEqual(len(self.of("done")), len(MODES), f"a run did not end; logs in {self.system.logdir}")

    def test_no_master_raises_remote_unavailable_quickly(self):
        got = self.of("unreachable")
        self.assertEqual(len(got), 1, got)
        got = got[0]
        self.assertEqual(got["raised"], "RemoteUnavailable", got)
        self.assertIn(self.unreachable, got["message"])
        self.assertIn("no ROS master", got["message"])
        self.assertLess(got["seconds"], 6.0, "should fail within the 5 s reachability bound")
        print(f"[api_remote] unreachable master: RemoteUnavailable in {got['seconds'] * 1e3:.0f} ms")

    def test_every_output_equals_local_inference(self):
        for mode in MODES:
            with self.subTest(mode=mode):
                frames = self.frames(mode)
                self.assertEqual(len(frames), FRAMES, f"{mode}: {frames}")
                for f in frames:
                    self.assertIsNone(f["problem"], f)
                    self.assertGreater(f["scale"], 0.0, f)
                    self.assertLessEqual(f["max_abs"], REL_TOL * f["scale"], f)
                worst = max(f["max_abs"] / f["scale"] for f in frames)
                print(
                    f"[api_remote] {mode}: {len(frames)} outputs equal local inference (worst relative diff "
                    f"{worst:.1e}; median call {sorted(f['seconds'] for f in frames)[len(frames) // 2] * 1e3:.0f} ms, "
                    f"noisy 2-core machine)"
                )

    def test_frames_ran_distributed_without_fallback(self):
        """server_only always exchanges tiles; intradp does unless its (small, fast-solved) book chose device_only."""
        distributed = 0
        for mode in MODES:
            with self.subTest(mode=mode):
                frames = self.frames(mode)
                self.assertEqual(len(frames), FRAMES)
                self.assertTrue(all(f["fallbacks"] == 0 for f in frames), [f["fallbacks"] for f in frames])
                for f in frames:
                    st = f["stats"]
                    self.assertIsNotNone(st, f)
                    if mode == "server_only" or f["plan"] != "device_only":
                        self.assertGreater(st["tiles_out"], 0, f"{mode}: no tile sent to the server: {f}")
                        self.assertGreater(st["bytes_out"], 0, f)
                        self.assertGreater(st["tiles_in"], 0, f"{mode}: no tile came back from the server: {f}")
                        self.assertGreater(st["bytes_in"], 0, f)
                        distributed += 1
                last = frames[-1]["stats"]
                print(
                    f"[api_remote] {mode}: plan {frames[-1]['plan']}, tiles out/in {last['tiles_out']}/"
                    f"{last['tiles_in']}, bytes out/in {last['bytes_out']}/{last['bytes_in']}"
                )
        self.assertGreaterEqual(distributed, FRAMES, "server_only frames must all run on the server")


if __name__ == "__main__":
    rostest.rosrun(PKG, "api_remote", ApiRemoteTest, sys.argv)
