"""Codec profiles: measured ratio and times become per-MB costs the solver can compare with sending raw."""

from __future__ import annotations

import numpy as np
import pytest

from intradp_ros.core.codecs.profile import CodecProfile, measure_codec, profile_codecs
from intradp_ros.core.tile import CODEC_DELTA_ZSTD, CODEC_RAW, CODEC_WEBP, CODEC_ZSTD, CODEC_ZSTD_SHUFFLE


def test_measure_codec_reports_bytes_and_exactness() -> None:
    x = np.zeros((64, 64), np.float32)
    m = measure_codec(CODEC_ZSTD, x, repeat=2)
    assert m.exact and m.raw_bytes == x.nbytes and m.bytes < x.nbytes // 10 and m.ratio == m.bytes / x.nbytes
    assert m.encode_s >= 0 and m.decode_s >= 0
    wrong = measure_codec(CODEC_RAW, x, repeat=1, reference=np.ones_like(x))
    assert not wrong.exact


def test_profile_codecs_skips_codecs_that_do_not_apply() -> None:
    samples = [np.random.default_rng(0).standard_normal((8, 32)).astype(np.float32)]
    names = {
        p.name
        for p in profile_codecs(samples, [CODEC_RAW, CODEC_ZSTD_SHUFFLE, CODEC_DELTA_ZSTD, CODEC_WEBP], "robot", 1)
    }
    assert names == {"raw", "zstd_shuffle"}
    with pytest.raises(ValueError):
        profile_codecs([], [CODEC_RAW], "robot")


def test_pays_compares_with_raw_on_the_link() -> None:
    p = CodecProfile(
        CODEC_ZSTD, "zstd", "robot", "uint8", ratio=0.5, encode_s_per_mb=0.01, decode_s_per_mb=0.01, samples=1
    )
    mb = 1_000_000
    assert p.seconds(mb, 1e6) == pytest.approx(0.01 + 0.5 + 0.01)
    assert p.pays(mb, 1e6)  # slow link: halving the bytes wins
    assert not p.pays(mb, 1e9)  # fast link: 20 ms of coding loses to 1 ms of raw transfer
    assert not p.slowed(40.0).pays(mb, 1.25e6)  # a 40x slower robot loses even on 10 Mbit/s
    assert CodecProfile.from_json(p.to_json()) == p


def test_profiles_split_per_call_and_per_mb_costs() -> None:
    samples = [np.zeros((64, 256), np.float32)]
    (p,) = profile_codecs(samples, [CODEC_ZSTD], "robot", 2)
    assert p.encode_fixed_s > 0 and p.decode_fixed_s > 0 and p.encode_s_per_mb >= 0
    assert CodecProfile.from_json(p.to_json()) == p
    old = {k: v for k, v in p.to_dict().items() if not k.endswith("_fixed_s")}
    assert CodecProfile.from_dict(old).encode_fixed_s == 0.0, "profiles from before per-call costs load"
    assert p.slowed(2.0).encode_fixed_s == pytest.approx(2 * p.encode_fixed_s)
    assert p.seconds(0, 1e6) == pytest.approx(p.encode_fixed_s + p.decode_fixed_s)


def test_codec_and_wire_costs_time_each_call_cold(monkeypatch):
    """A band tile's coding in a run follows operator calls or a wait, and timed warm, back to back, it measured 2-3x
    cheaper: `measure_codec(cold=True)` evicts the caches before every encode and every decode, `profile_codecs`
    measures cold, and the per-tile wire work's per-call part is timed cold too (counted, not timed)."""
    import numpy as np

    from intradp_ros.core.codecs import profile as cp
    from intradp_ros.core.profiler import measure_tile_wire_cost
    from intradp_ros.core.tile import CODEC_RAW, CODEC_ZSTD

    calls = []
    monkeypatch.setattr(cp, "evict_caches", lambda buf: calls.append(buf.nbytes))
    monkeypatch.setattr(cp, "cold_buffer", lambda: np.zeros(64, dtype=np.uint8))
    arr = np.arange(256, dtype=np.float32).reshape(4, 64)
    cp.measure_codec(CODEC_RAW, arr, repeat=3)
    assert calls == [], "warm unless asked"
    cp.measure_codec(CODEC_RAW, arr, repeat=3, cold=True)
    assert len(calls) == 6, "before each of 3 encodes and 3 decodes"
    calls.clear()
    profs = cp.profile_codecs([arr], [CODEC_RAW, CODEC_ZSTD], "here", repeat=3)
    assert profs and len(calls) == 2 * 2 * (3 + 3), "both codecs: the sample and the one-row call, cold"
    calls.clear()
    measure_tile_wire_cost(repeats=3)
    assert len(calls) == 2 * 3, "the smallest size's send and receive, cold"
