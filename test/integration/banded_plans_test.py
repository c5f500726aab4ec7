#!/usr/bin/env python3
"""rostest: banded (streamed) plans through the real client and server nodes, exact and really banded.

KAPAO-S (256x320) on a Testbed with the master bridge. The server's plan book is forced: before the client's
handshake the test writes a book into the server's plan-book cache under the cache key the server computes from
its own command line (`server_node.settings_from_argv` + `server_book_keys`), and the server runs with a
`plan_cache_tolerance` that makes any profile totals "close", so the handshake is answered with that book instead
of a solve. Its Intra-DP plans:
  bucket 1 MB/s:  Plan.server_only(g, bands=BANDS): the input goes up in BANDS row bands, the server runs its first
                  operators band by band as they arrive;
  bucket 20 MB/s: Plan.layer_partition(g, SPLIT_CUT).with_bands(BANDS): the robot computes the Focus stem and the
                  first convolution block in BANDS bands and sends each band's rows as soon as it exists.
The client starts at the 1 MB/s bucket; the first feeder phase's frames run the server-only plan, then it publishes
a PlanSwitch to 20 MB/s and the second phase's frames run the split plan. For every counted frame: InferenceStats
name the forced plan's id, tiles up == BANDS (and the tiles seen on the up topic are the plan's bands, byte for
byte), no local fallback, and the published poses equal local inference on the same frame. With the bands
collapsed to one anywhere (plan JSON, handshake, executor, sender) the tile counts and plan ids differ and it fails.
Needs root (skipped with the reason otherwise).
"""

import sys
from pathlib import Path

import rostest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import system_testlib as lib

PKG = "intradp_ros"
FRAMES = 4  # counted frames per plan
BANDS = 4
SPLIT_CUT = 11  # nodes [0, 11) on the robot: input, Focus (float, /255, four slices, cat), conv + batch norm + SiLU
SERVER_ONLY_BUCKET, SPLIT_BUCKET = 1.0, 20.0
GRID = "1,20"
FEED = ["--closed", "--tiles", "--warm-until-distributed", "--frame-timeout", "15"]


def forced_plans(g):
    """(server-only in BANDS bands, robot/server split with both sides in BANDS bands) for the served graph."""
    from intradp_ros.core import Plan
    from intradp_ros.core.runtime.schedule import check_progress

    plans = (Plan.server_only(g, bands=BANDS), Plan.layer_partition(g, SPLIT_CUT).with_bands(BANDS))
    for p in plans:
        p.validate()
        check_progress(p)
    return plans


def forced_book(g, intradp_rows):
    """A plan book whose Intra-DP rows are `intradp_rows` [(bucket MB/s, plan)]; the other modes run the plain
    device-only / server-only plans at every bucket (the client only runs mode intradp here)."""
    from intradp_ros.core import Plan
    from intradp_ros.core.plan_book import PlanBook
    from intradp_ros.core.plan_table import PlanTable, TableRow
    from intradp_ros.core.vocabulary import MODES, Mode

    table = PlanTable(g.fingerprint, [TableRow(b, p, "banded_plans rostest", {}) for b, p in intradp_rows], {})
    plans = [Plan.device_only(g), Plan.server_only(g)] + [p for _, p in intradp_rows]
    modes = {m: [(b, 0) for b, _ in intradp_rows] for m in MODES}
    modes[Mode.SERVER_ONLY] = [(b, 1) for b, _ in intradp_rows]
    modes[Mode.INTRADP] = [(b, 2 + i) for i, (b, _) in enumerate(intradp_rows)]
    return PlanBook(g, table, plans, modes)


def seed_server_cache(server_proc, cache_dir, g, book):
    """Write `book` where the server started as `server_proc` (with INTRADP_CACHE=`cache_dir`) looks for cached
    books of `g`: the context part of the name is the one `server_node.server_book_keys` computes from the
    server's own settings (grid, solver settings, deadline, codec policy); the profile part is free, the
    server's tolerance makes any profile totals and codec ratios close."""
    from intradp_ros.core.plan_book import context_key, parse_grid
    from intradp_ros.core.power import PowerModel
    from intradp_ros.ros.server_node import settings_from_argv, solver_config

    argv = [str(a) for a in server_proc.args]
    start = next(i for i, a in enumerate(argv) if a.endswith("intradp_server"))
    s = settings_from_argv(argv[start:])
    context = context_key(g, parse_grid(s.grid), PowerModel(), solver_config(s), float(s.deadline), str(s.codecs))
    path = Path(s.cache_dir or cache_dir) / "plan_books" / f"{g.fingerprint}_{context}_forced.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    # codec_ratios {}: it records no codec ratio to compare (a book without the record at all is never "close")
    path.write_text(book.to_json({"robot_s": 1.0, "server_s": 1.0, "camera_ratio": 0.0, "codec_ratios": {}}))
    return path


class BandedPlansTest(lib.SystemTestCase):
    tag = "banded"

    @classmethod
    def start(cls, system):
        g = lib.served_graph("kapao", lib.KAPAO)
        cls.server_only, cls.split = forced_plans(g)
        book = forced_book(g, [(SERVER_ONLY_BUCKET, cls.server_only), (SPLIT_BUCKET, cls.split)])
        # tolerance 1e9: any profile totals are "close" to the forced book's, so the handshake never solves
        server = system.start_server([lib.KAPAO], ["robot1"], ["--grid", GRID, "--plan-cache-tolerance", "1e9"])
        cls.book_path = seed_server_cache(server, system.cache, g, book)
        system.start_client(
            "kapao",
            "robot1",
            lib.KAPAO,
            ["--mode", "intradp", "--deadline", "5", "--initial-bandwidth", str(SERVER_ONLY_BUCKET)],
        )
        # phase 1: the server-only plan in bands; then a PlanSwitch to the split plan's bucket
        cls.first = cls.feed(
            system,
            ["--frames", str(FRAMES), *FEED, "--wait-ready", "120", "--switch-bucket", str(SPLIT_BUCKET)],
            "server_only",
        )
        # phase 2: the split plan, both sides in bands (its warm-up frames also make sure the switch has landed)
        cls.second = cls.feed(system, ["--frames", str(FRAMES), *FEED, "--wait-ready", "30"], "split")
        cls.ref = lib.LocalReference("kapao", lib.KAPAO, FRAMES)

    @staticmethod
    def feed(system, args, phase, timeout=150):
        return system.feed_phase("kapao", "robot1", args, phase, timeout)

    @staticmethod
    def counted(lines, kind):
        return {r["frame"]: r for r in lines.of(kind) if r["frame"].startswith("f")}

    def phases(self):
        return (("server-only", self.first, self.server_only), ("split", self.second, self.split))

    def test_the_forced_plans_are_banded(self):
        from intradp_ros.core.plan import ROBOT, SERVER, UP

        for name, plan in (("server-only", self.server_only), ("split", self.split)):
            self.assertEqual(plan.max_bands(), BANDS, name)
            up = [t for t in plan.transfers() if t.direction == UP]
            self.assertEqual(len(up), BANDS, f"{name}: up tiles {[(t.node, t.start, t.stop) for t in up]}")
            self.assertTrue(plan.band_map(SERVER), f"{name}: the server runs no node in bands")
        self.assertEqual(len(self.split.band_map(ROBOT)), SPLIT_CUT, "split: every robot node runs in bands")
        log = (self.system.logdir / "server.log").read_text(errors="replace")
        self.assertIn("from cache", log, "the server solved a book instead of answering with the forced one")

    def test_every_frame_ran_its_banded_plan(self):
        from intradp_ros.core.plan import UP

        for name, lines, plan in self.phases():
            self.assertFalse(lines.of("error"), f"{name}: {lines.of('error')}")
            stats = self.counted(lines, "stats")
            self.assertEqual(len(stats), FRAMES, f"{name}: stats of {sorted(stats)}")
            want = [t.nbytes for t in plan.transfers() if t.direction == UP]
            up = lib.up_tile_bytes(lines.of("tiles"))
            for fid, s in sorted(stats.items()):
                ran = f"{name} {fid}: ran plan {s['plan_id']} {s['plan_name']!r}"
                self.assertEqual(s["mode"], "intradp", ran)
                self.assertFalse(s["fell_back"], f"{ran}, fell back: {s['error']}")
                self.assertEqual(s["plan_id"], plan.plan_id, f"{ran}, not {plan.plan_id} {plan.name!r}")
                self.assertEqual(s["tiles_up"], BANDS, f"{ran}: {s['tiles_up']} tiles up, not one per band")
                self.assertEqual(up.get(s["request_id"]), want, f"{ran}: up tiles on the wire, the plan's bands {want}")
                self.assertGreater(s["tiles_down"], 0, ran)
            problems = lib.check_stats(list(stats.values()), lines.of("tiles"))
            self.assertFalse(problems, f"{name}: {problems}")
            lat = sorted(s["latency_s"] for s in stats.values())
            print(
                f"[banded_plans] {name}: {len(stats)} frames ran {plan.name} ({BANDS} bands, {BANDS} tiles up of "
                f"{want} bytes), median latency {lat[len(lat) // 2] * 1e3:.0f} ms (noisy shared 2-core machine)"
            )

    def test_every_frame_equals_local_inference(self):
        for name, lines, _plan in self.phases():
            res = self.counted(lines, "result")
            self.assertEqual(len(res), FRAMES, f"{name}: results for {sorted(res)}")
            bad, poses = lib.kapao_mismatches(self.ref, res)
            self.assertFalse(bad, f"{name}: {bad}")
            self.assertGreater(poses, 0, f"{name}: the comparison is empty: no poses at these thresholds")
            print(f"[banded_plans] {name}: {len(res)} frames equal local inference ({poses} poses)")


if __name__ == "__main__":
    rostest.rosrun(PKG, "banded_plans", BandedPlansTest, sys.argv)
