"""Codec choice: kinds, candidates, per-byte options from two sides' codec profiles, the choice that pays."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from intradp_ros.core.codec_choice import (
    CAMERA_MAX_RATIO,
    KIND_BINARY,
    KIND_IMAGE,
    KIND_SPARSE,
    PAY_MARGIN,
    CodecCosts,
    CodecOption,
    SampleCollector,
    applies,
    baseline,
    camera_entry,
    camera_profile,
    candidates,
    check_camera_entry,
    codec_kind,
    crop_sample,
)
from intradp_ros.core.codecs.profile import CodecProfile
from intradp_ros.core.plan import DOWN, UP
from intradp_ros.core.sparse import SparseRows
from intradp_ros.core.tile import (
    CODEC_BITPACK,
    CODEC_BITPACK_ZSTD,
    CODEC_CAMERA,
    CODEC_DELTA_ZSTD,
    CODEC_FP16,
    CODEC_GREEN_DELTA_ZSTD,
    CODEC_RAW,
    CODEC_SPARSE,
    CODEC_SPARSE_ZSTD,
    CODEC_WEBP,
    CODEC_ZSTD,
    CODEC_ZSTD_SHUFFLE,
)


def node(index=0, dtype=torch.float32, shape=(1, 3, 8, 8), axis=2, binary=False, sparse=False, is_input=False):
    nbytes = int(np.prod(shape)) * torch.tensor([], dtype=dtype).element_size()
    return SimpleNamespace(
        index=index, dtype=dtype, shape=shape, axis=axis, binary=binary, is_sparse=sparse, is_input=is_input,
        wire_nbytes=nbytes,
    )  # fmt: skip


def test_kinds_baselines_and_candidates() -> None:
    assert codec_kind(node(dtype=torch.uint8)) == KIND_IMAGE
    assert codec_kind(node(dtype=torch.uint8, binary=True)) == KIND_BINARY
    assert codec_kind(node(sparse=True)) == KIND_SPARSE
    assert codec_kind(node()) == "float32"
    assert baseline(KIND_BINARY) == CODEC_BITPACK and baseline(KIND_SPARSE) == CODEC_SPARSE
    assert baseline("float32") == CODEC_RAW
    assert set(candidates(KIND_IMAGE)) == {CODEC_ZSTD, CODEC_DELTA_ZSTD, CODEC_GREEN_DELTA_ZSTD, CODEC_WEBP}
    assert set(candidates("float32")) == {CODEC_ZSTD, CODEC_ZSTD_SHUFFLE}
    assert candidates("int8") == (CODEC_ZSTD,)
    assert candidates("no_such_dtype") == ()
    assert CODEC_FP16 not in candidates("float32"), "lossy codecs are never candidates"


def test_applies_checks_layout() -> None:
    img = node(dtype=torch.uint8)
    assert applies(CODEC_WEBP, img) and applies(CODEC_RAW, img)
    assert not applies(CODEC_WEBP, node(dtype=torch.uint8, shape=(1, 4, 8, 8)))  # not 3 channels
    assert not applies(CODEC_WEBP, node(dtype=torch.uint8, axis=3))  # split along columns: not whole rows
    assert applies(CODEC_GREEN_DELTA_ZSTD, img) and applies(CODEC_GREEN_DELTA_ZSTD, node(dtype=torch.uint8, axis=3))
    assert not applies(CODEC_GREEN_DELTA_ZSTD, node(dtype=torch.uint8, shape=(1, 4, 8, 8)))  # not RGB planes
    assert not applies(CODEC_GREEN_DELTA_ZSTD, node(dtype=torch.uint8, axis=1))  # split along the channels
    assert not applies(CODEC_GREEN_DELTA_ZSTD, node())  # float32: not an image kind
    assert not applies(CODEC_BITPACK_ZSTD, img) and applies(CODEC_BITPACK_ZSTD, node(dtype=torch.uint8, binary=True))
    assert not applies(CODEC_SPARSE_ZSTD, node()) and applies(CODEC_SPARSE_ZSTD, node(sparse=True))


def test_crop_sample_keeps_rows() -> None:
    a = np.zeros((1, 3, 100, 50), np.float32)
    c = crop_sample(a, limit=a.nbytes // 4)
    assert c.shape == (1, 3, 25, 50) and c.flags.c_contiguous
    assert crop_sample(a) is a


def prof(codec, name, side, kind, ratio, enc_ms, dec_ms, dtype="float32"):
    return CodecProfile(codec, name, side, dtype, ratio, enc_ms / 1e3, dec_ms / 1e3, 1, kind)


def costs(robot_enc_ms=10.0, server_enc_ms=1.0):
    nodes = [node(0, torch.uint8), node(1), node(2, torch.uint8, binary=True)]
    robot = [
        prof(CODEC_RAW, "raw", "robot", KIND_IMAGE, 1.0, 0, 0, "uint8"),
        prof(CODEC_WEBP, "webp", "robot", KIND_IMAGE, 0.4, robot_enc_ms, robot_enc_ms, "uint8"),
        prof(CODEC_ZSTD, "zstd", "robot", KIND_IMAGE, 0.9, 1.0, 1.0, "uint8"),
        prof(CODEC_RAW, "raw", "robot", "float32", 1.0, 0, 0),
        prof(CODEC_ZSTD_SHUFFLE, "zstd_shuffle", "robot", "float32", 0.5, 2.0, 2.0),
        prof(CODEC_BITPACK, "bitpack", "robot", KIND_BINARY, 0.125, 0, 0, "uint8"),
        prof(CODEC_BITPACK_ZSTD, "bitpack_zstd", "robot", KIND_BINARY, 0.0125, 1.0, 1.0, "uint8"),
    ]
    server = [CodecProfile(**{**p.to_dict(), "side": "server"}) for p in robot]
    server = [p.slowed(server_enc_ms / robot_enc_ms) for p in server]
    return CodecCosts(nodes, robot, server)


def test_options_are_per_baseline_byte_and_direction() -> None:
    c = costs()
    assert bool(c) and not CodecCosts([], [], [])
    up = {o.codec: o for o in c.options(0, UP)}
    assert set(up) == {CODEC_WEBP, CODEC_ZSTD}
    assert up[CODEC_WEBP].ratio == pytest.approx(0.4)
    assert up[CODEC_WEBP].encode_s_per_byte == pytest.approx(10e-3 / 1e6)  # the robot encodes
    assert up[CODEC_WEBP].decode_s_per_byte == pytest.approx(1e-3 / 1e6)  # the server decodes
    down = c.option(0, DOWN, CODEC_WEBP)
    assert down is not None and down.encode_s_per_byte == pytest.approx(1e-3 / 1e6)
    binary = c.option(2, UP, CODEC_BITPACK_ZSTD)
    assert binary is not None and binary.ratio == pytest.approx(0.1)  # relative to the bit-packed bytes
    assert binary.encode_s_per_byte == pytest.approx(1e-3 / 1e6 / 0.125)  # per packed byte: 8 raw bytes each
    assert c.option(1, UP, CODEC_WEBP) is None


def test_best_pays_or_is_none() -> None:
    c = costs()
    mb = 1e6
    assert c.best(0, UP, mb, 1e6).codec == CODEC_WEBP  # slow link: 0.4 s + 11 ms beats 1 s
    assert c.best(0, UP, mb, 1e9) is None  # fast link: 1 ms raw beats any encode
    slow_robot = costs(robot_enc_ms=2000.0)
    assert slow_robot.best(0, UP, mb, 1e6).codec == CODEC_ZSTD  # a heavy codec on a slow robot loses
    opt = CodecOption(CODEC_ZSTD, "zstd", 1.0 - PAY_MARGIN / 2, 0.0, 0.0)
    assert not opt.pays(mb, 1e6), "a codec saving less than the margin does not pay"
    assert not opt.pays(0, 1e6)


def test_best_many_matches_best() -> None:
    c = costs()
    bws = np.array([1e5, 1e6, 1e7, 1e9])
    pay, enc, dec = c.best_many(0, UP, 2e6, bws)
    for i, bw in enumerate(bws):
        opt = c.best(0, UP, 2e6, bw)
        want = (
            (2e6, 0.0, 0.0)
            if opt is None
            else (2e6 * opt.ratio, 2e6 * opt.encode_s_per_byte, 2e6 * opt.decode_s_per_byte)
        )
        assert (pay[i], enc[i], dec[i]) == pytest.approx(want)


def test_sample_collector_spreads_samples_and_profiles_every_kind() -> None:
    nodes = [node(i) for i in range(7)] + [node(7, torch.uint8), node(8, sparse=True)]
    col = SampleCollector(nodes, per_kind=3)
    assert {0, 3, 6, 7, 8} == col.wanted
    rng = np.random.default_rng(0)
    for n in nodes[:7]:
        col.add(n, torch.relu(torch.from_numpy(rng.standard_normal((1, 3, 8, 8)).astype(np.float32))))
    col.add(nodes[7], torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    col.add(nodes[8], SparseRows(torch.arange(0, 40, 2), torch.ones(20, 2), (1, 64)))
    assert len(col.dense["float32"]) == 3 and len(col.dense[KIND_IMAGE]) == 1 and len(col.sparse) == 1
    got = {(p.kind, p.name) for p in col.profile("robot", repeat=1)}
    assert ("float32", "zstd_shuffle") in got and (KIND_IMAGE, "webp") in got and (KIND_SPARSE, "sparse_zstd") in got
    assert (KIND_SPARSE, "sparse") in got and ("float32", "raw") in got


def test_per_tile_costs_make_many_small_tiles_lose() -> None:
    opt = CodecOption(CODEC_ZSTD, "zstd", 0.5, 0.0, 0.0, encode_fixed_s=1e-3, decode_fixed_s=1e-3)
    assert opt.seconds(1e6, 1e6, tiles=3) == pytest.approx(0.5 + 0.006)
    assert opt.pays(1e6, 1e6) and not opt.pays(1e6, 1e6, tiles=300), "300 band tiles pay 0.6 s of calls"
    nodes = [node(0)]
    profs = [
        prof(CODEC_RAW, "raw", "x", "float32", 1.0, 0, 0),
        CodecProfile(CODEC_ZSTD, "zstd", "x", "float32", 0.5, 0.0, 0.0, 1, "float32", 1e-3, 1e-3),
    ]
    c = CodecCosts(nodes, profs, profs)
    assert c.best(0, UP, 1e6, 1e6).codec == CODEC_ZSTD and c.best(0, UP, 1e6, 1e6, tiles=300) is None
    pay, enc, dec = c.best_many(0, UP, 1e3, np.array([1e3, 1e9]))
    assert pay[0] == 500 and enc[0] == pytest.approx(1e-3) and pay[1] == 1e3 and enc[1] == 0.0


def test_sample_collector_skips_scalars() -> None:
    col = SampleCollector([node(0, shape=())], per_kind=3)
    col.add(node(0, shape=()), torch.tensor(1.5))
    assert col.dense.get("float32", []) == [] and col.profile("robot", repeat=1) == []


# ---------------------------------------------------------------------------------------------- camera option
def camera_costs(robot_camera: bool = True, server_camera: bool = True, ratio: float = 0.05) -> CodecCosts:
    """Node 0 a camera-shaped uint8 graph input, node 1 a uint8 non-input, node 2 a float input."""
    nodes = [node(0, torch.uint8, is_input=True), node(1, torch.uint8), node(2, is_input=True)]
    robot = [
        prof(CODEC_RAW, "raw", "robot", KIND_IMAGE, 1.0, 0, 0, "uint8"),
        prof(CODEC_WEBP, "webp", "robot", KIND_IMAGE, 0.4, 10.0, 10.0, "uint8"),
    ]
    server = [CodecProfile(**{**p.to_dict(), "side": "server"}) for p in robot]
    if robot_camera:
        robot.append(camera_profile("robot", ratio))
    if server_camera:
        server.append(camera_profile("server", 1.0, decode_s_per_mb=0.02))
    return CodecCosts(nodes, robot, server)


def test_camera_option_only_for_a_whole_input_sent_up() -> None:
    c = camera_costs()
    whole = float(c.nodes[0].wire_nbytes)
    opt = c.option(0, UP, CODEC_CAMERA)
    assert opt is not None and opt.whole_only and opt.ratio == pytest.approx(0.05)
    assert opt.encode_s_per_byte == 0.0 and opt.decode_s_per_byte == pytest.approx(0.02 / 1e6)
    assert c.best(0, UP, whole, 1e6).codec == CODEC_CAMERA  # the JPEG beats WebP's 0.4
    assert c.best(0, UP, whole / 2, 1e6).codec == CODEC_WEBP, "a partial input has no camera file"
    assert c.best(0, UP, whole, 1e6, tiles=4).codec == CODEC_WEBP, "a banded input has no camera file"
    assert c.option(0, UP, CODEC_CAMERA, whole / 2) is None and c.option(0, UP, CODEC_CAMERA, whole) is not None
    assert all(o.codec != CODEC_CAMERA for o in c.options(0, DOWN)), "the camera file only goes up"
    assert all(o.codec != CODEC_CAMERA for o in c.options(1, UP)), "only graph inputs come from a camera"
    assert all(o.codec != CODEC_CAMERA for o in c.options(2, UP)), "a float input is no camera frame"
    pay, _enc, _dec = c.best_many(0, UP, whole, np.array([1e6]))
    assert pay[0] == pytest.approx(whole * 0.05)
    pay, _enc, _dec = c.best_many(0, UP, whole / 2, np.array([1e6]))
    assert pay[0] == pytest.approx(whole / 2 * 0.4)


def test_camera_option_needs_both_sides() -> None:
    """No camera entry in the robot's profile (passthrough not verified) or none measured by the server: no option."""
    for robot_camera, server_camera in ((False, True), (True, False)):
        c = camera_costs(robot_camera, server_camera)
        assert c.option(0, UP, CODEC_CAMERA) is None
        assert c.best(0, UP, float(c.nodes[0].wire_nbytes), 1e6).codec == CODEC_WEBP


def test_camera_option_loses_when_the_decode_costs_more_than_it_saves() -> None:
    c = camera_costs(ratio=0.9)
    assert c.best(0, UP, float(c.nodes[0].wire_nbytes), 1e12) is None  # fast link: raw pixels


def test_camera_entry_is_bounded() -> None:
    entry = camera_profile("robot", 0.1)
    assert camera_entry([entry]) == entry and camera_entry([]) is None
    check_camera_entry(entry)
    with pytest.raises(ValueError):
        camera_profile("robot", 0.0)
    with pytest.raises(ValueError):
        check_camera_entry(CodecProfile(**{**entry.to_dict(), "ratio": CAMERA_MAX_RATIO * 2}))
    assert applies(CODEC_CAMERA, node(0, torch.uint8, is_input=True))
    assert not applies(CODEC_CAMERA, node(0, torch.uint8)) and not applies(CODEC_CAMERA, node(0, is_input=True))


def _camera_like(h: int = 96, w: int = 128, seed: int = 3) -> np.ndarray:
    """[1, 3, h, w] uint8 with a textured luminance shared by the channels plus small per-channel noise."""
    rng = np.random.default_rng(seed)
    lum = np.cumsum(rng.integers(-6, 7, size=(h, w)), axis=1) + 128
    planes = [lum + off + rng.integers(-2, 3, size=(h, w)) for off in (12, 0, -20)]
    return np.clip(np.stack(planes), 0, 255).astype(np.uint8)[None]


def test_green_delta_is_chosen_where_it_pays_from_measured_profiles() -> None:
    """Profiles measured on camera-like RGB rows: on a slow link the fewest bytes win (green_delta_zstd, smaller
    than delta_zstd here); a link so fast that no coding pays keeps raw; without green's profile delta_zstd."""
    from intradp_ros.core.codec_choice import profile_kind

    samples = [_camera_like(seed=s) for s in range(2)]
    # WebP left out: smaller still on these tiles and at this bandwidth it would win (its encode time is what prices
    # it out on real frames, test_best_pays_or_is_none)
    robot = [p for p in profile_kind(KIND_IMAGE, samples, "robot", repeat=1) if p.codec != CODEC_WEBP]
    server = [CodecProfile(**{**p.to_dict(), "side": "server"}) for p in robot]
    ratio = {p.codec: p.ratio for p in robot}
    assert ratio[CODEC_GREEN_DELTA_ZSTD] < ratio[CODEC_DELTA_ZSTD] < 1.0
    img = node(0, torch.uint8, shape=(1, 3, 96, 128))
    nbytes = float(img.wire_nbytes)
    c = CodecCosts([img], robot, server)
    slow = nbytes / 10.0  # raw takes 10 s: bytes decide, coding (milliseconds) does not
    assert c.best(0, UP, nbytes, slow).codec == CODEC_GREEN_DELTA_ZSTD
    assert c.best(0, UP, nbytes, 1e15) is None
    without = CodecCosts([img], [p for p in robot if p.codec != CODEC_GREEN_DELTA_ZSTD], server)
    assert without.best(0, UP, nbytes, slow).codec == CODEC_DELTA_ZSTD
    split_channels = CodecCosts([node(0, torch.uint8, shape=(1, 3, 96, 128), axis=1)], robot, server)
    assert CODEC_GREEN_DELTA_ZSTD not in {o.codec for o in split_channels.options(0, UP)}


def test_a_slow_green_delta_loses_to_delta_zstd() -> None:
    """The choice weighs coding time too: green's 10 % fewer bytes do not pay for a much slower encode."""
    mk = lambda side, g_ms: [  # noqa: E731
        prof(CODEC_RAW, "raw", side, KIND_IMAGE, 1.0, 0, 0, "uint8"),
        prof(CODEC_DELTA_ZSTD, "delta_zstd", side, KIND_IMAGE, 0.70, 5.0, 5.0, "uint8"),
        prof(CODEC_GREEN_DELTA_ZSTD, "green_delta_zstd", side, KIND_IMAGE, 0.63, g_ms, 5.0, "uint8"),
    ]
    img = node(0, torch.uint8)
    mb, bw = 1e6, 1e7  # 1 MB at 10 MB/s: 100 ms raw, green saves 7 ms of link
    assert CodecCosts([img], mk("robot", 6.0), mk("server", 6.0)).best(0, UP, mb, bw).codec == CODEC_GREEN_DELTA_ZSTD
    assert CodecCosts([img], mk("robot", 20.0), mk("server", 20.0)).best(0, UP, mb, bw).codec == CODEC_DELTA_ZSTD
