#!/usr/bin/env python3
"""rostest: KAPAO-S (256x320) from JPEG CompressedImage frames through client and server equals local inference
on the decoded frames, and the camera's JPEG bytes are what goes up (camera passthrough, docs/wire.md).

The client runs server_only (every frame sends the whole input), so each frame either passes its JPEG through
(after the server decoded the first probe frame identically) or sends the letterboxed pixels (before that).
"""

import sys
import time
from pathlib import Path

import rostest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import system_feeder
import system_testlib as lib

PKG = "intradp_ros"
FRAMES = 8
CAMERA_HEADER = 20  # core/codecs/camera.py: magic + 16-byte hash before the file


class KapaoCompressedTest(lib.SystemTestCase):
    tag = "kapaojpg"

    @classmethod
    def start(cls, system):
        cls.system.start_server([lib.KAPAO], ["robot1"])
        cls.system.start_client(
            "kapao",
            "robot1",
            lib.KAPAO,
            [
                "--image-transport",
                "compressed",
                "--mode",
                "server_only",
                "--deadline",
                "5",
                "--camera-probe-period",
                "1",
            ],
        )
        cls.lines = cls.system.start_feeder(
            "kapao",
            "robot1",
            ["--compressed", "--frames", str(FRAMES), "--closed", "--tiles", "--warm-until-distributed",
             "--frame-timeout", "15", "--wait-ready", "90"],
        )  # fmt: skip
        if not cls.lines.wait_for(lambda: cls.lines.of("done") or cls.lines.of("error"), timeout=150):
            raise AssertionError("feeder did not finish within 150 s")
        time.sleep(1.0)
        cls.ref = lib.LocalReference("kapao", lib.KAPAO, FRAMES, compressed=True)
        cls.jpegs = system_feeder.kapao_jpegs(FRAMES)

    def results(self):
        return {r["frame"]: r for r in self.lines.of("result") if r["frame"].startswith("f")}

    def test_every_frame_equals_local_inference_on_the_decoded_frame(self):
        self.assertFalse(self.lines.of("error"), self.lines.of("error"))
        res = self.results()
        self.assertEqual(len(res), FRAMES, f"results for {sorted(res)}")
        bad, total = lib.kapao_mismatches(self.ref, res)
        self.assertFalse(bad, bad)
        self.assertGreater(total, 0, "the comparison is empty: no poses at these thresholds")
        print(f"[kapao_compressed] {len(res)} JPEG frames equal local inference on their decoded pixels")

    def test_jpeg_bytes_went_up_unchanged(self):
        log = (self.system.logdir / "client_robot1.log").read_text(errors="replace")
        self.assertIn("camera passthrough on", log)
        up = lib.up_tile_bytes(self.lines.of("tiles"), payload_only=False)
        stats = {s["frame"]: s for s in self.lines.of("stats") if s["frame"].startswith("f")}
        self.assertEqual(len(stats), FRAMES)
        raw = 3 * 256 * 320
        for fid, s in stats.items():
            self.assertFalse(s["fell_back"], f"{fid} fell back: {s['error']}")
            want = len(self.jpegs[lib.frame_index(fid)]) + CAMERA_HEADER
            self.assertEqual(up.get(s["request_id"]), [want], f"{fid}: up tiles {up.get(s['request_id'])}, JPEG {want}")
        problems = lib.check_stats(list(stats.values()), self.lines.of("tiles"))
        self.assertFalse(problems, problems)  # InferenceStats count the bytes on the wire, not the pixels
        sizes = sorted(len(j) for j in self.jpegs)
        print(
            f"[kapao_compressed] up per frame: the JPEG ({sizes[0]}..{sizes[-1]} bytes) instead of {raw} bytes "
            f"of letterboxed pixels ({sizes[len(sizes) // 2] / raw:.2f}x)"
        )


if __name__ == "__main__":
    rostest.rosrun(PKG, "kapao_compressed", KapaoCompressedTest, sys.argv)
