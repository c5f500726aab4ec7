"""plan_book: every mode has a plan per bucket, the book survives JSON, the disk cache, and is refused for
another graph; every plan runs through the engine and equals the local forward."""

from __future__ import annotations

import pytest
import torch

from intradp_ros.core import capture, run_pair
from intradp_ros.core.plan_book import MODES, PlanBook, PlanBookError, build_plan_book, parse_grid
from intradp_ros.core.profiler import profile_graph
from intradp_ros.core.solver import SolverConfig


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = torch.nn.Conv2d(8, 8, 3, padding=1, stride=2)
        self.head = torch.nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.c2(torch.relu(self.c1(x.float() / 255))))
        return self.head(y.mean((2, 3)))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    torch.manual_seed(0)
    m = Tiny().eval()
    x = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8)
    g = capture(m, x)
    robot = profile_graph(g, [x], repeats=1, sizes=2, step_overhead=False)
    server = robot.scaled(0.25, "server")
    cache = tmp_path_factory.mktemp("cache")
    book, hit = build_plan_book(
        g, robot, server, [0.5, 5, 50], config=SolverConfig(maxiter=2, popsize=6), cache_dir=cache
    )
    return m, x, g, robot, server, cache, book, hit


def test_every_mode_has_a_plan_per_bucket(setup) -> None:
    _m, _x, g, *_rest, book, hit = setup
    assert not hit
    assert set(book.modes) == set(MODES)
    for mode in MODES:
        assert [b for b, _ in book.modes[mode]] == [0.5, 5.0, 50.0]
    assert book.plan_for("device_only", 5).name == "device_only"
    assert book.plan_for("server_only", 5).name == "server_only"
    assert book.plan_for("intradp", 0.1) is book.plan_for("intradp", 0.5)  # below the grid: lowest
    assert book.plan_for("intradp", 7.0) is book.plan_for("intradp", 5.0)  # its bucket
    assert len({p.plan_id for p in book.plans}) == len(book.plans)
    with pytest.raises(PlanBookError):
        book.plan_for("fastest", 5)


def test_json_round_trip_cache_and_other_graph(setup) -> None:
    m, x, g, robot, server, cache, book, _hit = setup
    back = PlanBook.from_json(book.to_json(), g)
    assert [p.plan_id for p in back.plans] == [p.plan_id for p in book.plans]
    assert back.modes == book.modes
    again, hit = build_plan_book(
        g, robot, server, [0.5, 5, 50], config=SolverConfig(maxiter=2, popsize=6), cache_dir=cache
    )
    assert hit and [p.plan_id for p in again.plans] == [p.plan_id for p in book.plans]
    other = capture(m, torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8))
    with pytest.raises(PlanBookError):
        PlanBook.from_json(book.to_json(), other)
    with pytest.raises(PlanBookError):
        PlanBook.from_json("{}", g)


def test_the_monitor_can_read_the_book_as_a_plan_table(setup) -> None:
    from intradp_ros.core.bandwidth_plans import choices_from_plan_table

    book = setup[-2]
    choices = choices_from_plan_table(book.to_json())
    assert [c.bucket_mbyte_per_s for c in choices] == [0.5, 5.0, 50.0]
    assert [c.plan_id for c in choices] == [book.plan_for("intradp", b).plan_id for b in (0.5, 5.0, 50.0)]


def test_every_plan_of_the_book_equals_the_local_forward(setup) -> None:
    m, x, g, *_rest, book, _hit = setup
    with torch.no_grad():
        ref = m(x)
    for p in book.plans:
        torch.testing.assert_close(run_pair(g, p, x), ref, rtol=1e-4, atol=1e-5)


def test_parse_grid() -> None:
    assert parse_grid("5,1,2") == [1.0, 2.0, 5.0]
    assert parse_grid("0.5:3:1") == [0.5, 1.0, 2.0, 3.0]
    for bad in ("", "a,b", "0,1", "1:2"):
        with pytest.raises(PlanBookError):
            parse_grid(bad)


def test_a_close_profile_reuses_the_cached_book_a_far_one_does_not(setup) -> None:
    from intradp_ros.core.plan_book import profiles_close

    _m, _x, g, robot, server, cache, book, _hit = setup
    cfg = SolverConfig(maxiter=2, popsize=6)
    drifted = robot.scaled(1.12, "robot, calibrated again")  # the calibration factor moved 1.017 -> 1.143
    again, hit = build_plan_book(g, drifted, server, [0.5, 5, 50], config=cfg, cache_dir=cache, tolerance=0.25)
    assert hit and [p.plan_id for p in again.plans] == [p.plan_id for p in book.plans]
    assert profiles_close((1.0, 2.0), (1.2, 2.0), 0.25) and not profiles_close((1.0, 2.0), (1.3, 2.0), 0.25)
    assert not profiles_close((1.0, 2.0), (1.0, 2.0), 0.0)
    # another context (grid) never reuses a book
    other, hit = build_plan_book(g, drifted, server, [0.5, 50], config=cfg, cache_dir=cache, tolerance=0.25)
    assert not hit and other.buckets == [0.5, 50.0]
    # without tolerance (the exact-profile key) the drifted profile is solved again
    _book, hit = build_plan_book(g, drifted, server, [0.5, 5, 50], config=cfg, cache_dir=cache)
    assert not hit


def test_a_book_without_the_camera_file_is_not_reused_for_a_robot_that_offers_it(setup) -> None:
    """Verified passthrough adds the camera entry: a close book solved without it (or at a far ratio) must not be
    reused, or Intra-DP would never price the camera file; one at a close ratio is."""
    from intradp_ros.core.codec_choice import camera_profile
    from intradp_ros.core.plan_book import cameras_close

    _m, _x, g, robot, server, cache, _book, _hit = setup
    cfg = SolverConfig(maxiter=2, popsize=6)
    grid = [0.5, 5, 50]
    with_camera = robot.with_codecs([*robot.codecs, camera_profile("robot", 0.1)])
    server_camera = server.with_codecs([*server.codecs, camera_profile("server", 1.0, decode_s_per_mb=0.01)])
    cam_book, hit = build_plan_book(g, with_camera, server_camera, grid, config=cfg, cache_dir=cache, tolerance=0.25)
    assert not hit, "the book without the camera file was reused"
    close = robot.with_codecs([*robot.codecs, camera_profile("robot", 0.11)])
    again, hit = build_plan_book(g, close, server_camera, grid, config=cfg, cache_dir=cache, tolerance=0.25)
    assert hit and [p.plan_id for p in again.plans] == [p.plan_id for p in cam_book.plans]
    assert cameras_close(0.0, 0.0, 0.25) and not cameras_close(0.0, 0.1, 0.25) and not cameras_close(0.1, 0.2, 0.25)


def test_prune_cache_keeps_only_the_newest_files(tmp_path) -> None:
    import os

    from intradp_ros.core.plan_book import prune_cache

    for i in range(6):
        f = tmp_path / f"g1_{i}.json"
        f.write_text("{}")
        os.utime(f, (1000 + i, 1000 + i))
    (tmp_path / "g2_0.json").write_text("{}")  # another graph: untouched
    removed = prune_cache(tmp_path, "g1_*.json", 2)
    assert sorted(p.name for p in removed) == [f"g1_{i}.json" for i in range(4)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g1_4.json", "g1_5.json", "g2_0.json"]


def test_codec_policies(setup) -> None:
    """'raw': nobody gets codecs; 'all': every mode's plan carries the codecs that pay at its bucket (here the
    profiles make zstd free and 4x smaller, so on a slow link every transfer of a float tensor is coded)."""
    from intradp_ros.core.codecs.profile import CodecProfile
    from intradp_ros.core.plan_book import check_codec_policy
    from intradp_ros.core.tile import CODEC_RAW, CODEC_ZSTD

    _m, _x, g, robot, server, cache, _book, _hit = setup
    fake = [
        CodecProfile(CODEC_RAW, "raw", "x", "uint8", 1.0, 0.0, 0.0, 1, "image"),
        CodecProfile(CODEC_ZSTD, "zstd", "x", "uint8", 0.25, 1e-6, 1e-6, 1, "image"),
    ]
    r, s = robot.with_codecs(fake), server.with_codecs(fake)
    cfg = SolverConfig(maxiter=2, popsize=6)
    coded, _ = build_plan_book(g, r, s, [0.01, 50], config=cfg, cache_dir=cache, codecs="all")
    assert coded.plan_for("server_only", 0.01).codecs, "server-only sends its input coded on a slow link"
    assert coded.plan_for("dsccs", 0.01).codecs or not coded.plan_for("dsccs", 0.01).transfers()
    raw, _ = build_plan_book(g, r, s, [0.01, 50], config=cfg, cache_dir=cache, codecs="raw")
    assert not any(p.codecs for p in raw.plans)
    default, _ = build_plan_book(g, r, s, [0.01, 50], config=cfg, cache_dir=cache)
    assert not default.plan_for("server_only", 0.01).codecs, "by default the baselines send raw tensors"
    mine = default.plan_for("intradp", 0.01)
    assert mine.codecs or not mine.transfers(), "Intra-DP codes what it sends (or sends nothing)"
    with pytest.raises(PlanBookError):
        check_codec_policy("some")


def test_a_book_solved_for_other_codec_ratios_is_not_reused(setup) -> None:
    """Codec profiles measured again on a photograph (ratio 0.68 where a random example gave 1.0) must not get the
    close book solved for the old ratios, or the codec never pays in it; ratios a few percent apart do."""
    import dataclasses

    from intradp_ros.core.plan_book import codec_ratios, codecs_close

    _m, _x, g, robot, server, cache, _book, _hit = setup
    assert codec_ratios(robot, server), "the fixture's profiles price codecs"
    cfg = SolverConfig(maxiter=2, popsize=6)
    grid = [0.5, 5, 50]

    def ratios(prof, factor):  # type: ignore[no-untyped-def]
        return prof.with_codecs([dataclasses.replace(c, ratio=min(1.0, c.ratio * factor)) for c in prof.codecs])

    build_plan_book(g, robot, server, grid, config=cfg, cache_dir=cache, tolerance=0.25)
    photo, hit = build_plan_book(g, ratios(robot, 0.6), server, grid, config=cfg, cache_dir=cache, tolerance=0.25)
    assert not hit, "the book solved for incompressible samples was reused"
    near, hit = build_plan_book(g, ratios(robot, 0.63), server, grid, config=cfg, cache_dir=cache, tolerance=0.25)
    assert hit and [p.plan_id for p in near.plans] == [p.plan_id for p in photo.plans]
    assert codecs_close({"a": 0.5}, {"a": 0.55}, 0.25) and not codecs_close({"a": 0.5}, {"a": 1.0}, 0.25)
    assert codecs_close({"a": 0.5}, {"b": 0.9}, 0.25), "only codecs both price are compared"
