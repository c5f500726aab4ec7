"""transport benchmark table: ratios and the target flag (only big tiles below target count)."""

from intradp_ros.eval.bench_transport import TARGET_RATIO, format_table


def test_bench_table_flags_big_tiles_below_target_only():
    figs = {
        64 << 10: {"latency_ms": 1, "ideal_ms": 6, "tile_mbit": 40, "iperf_mbit": 86, "ratio": 40 / 86},
        4 << 20: {"latency_ms": 400, "ideal_ms": 390, "tile_mbit": 86, "iperf_mbit": 86, "ratio": 1.0},
    }
    text = format_table(90, figs)
    assert "below target" not in text and ": met" in text
    figs[16 << 20] = {"latency_ms": 2000, "ideal_ms": 1550, "tile_mbit": 70, "iperf_mbit": 86, "ratio": 70 / 86}
    text = format_table(90, figs)
    assert text.count("below target") == 1 and "NOT met" in text
    assert TARGET_RATIO > 70 / 86
