"""echo demo tables: sizes, rates, medians and the ideal time come out right."""

from intradp_ros.eval.echo_demo import EchoResults, fmt_size, mbit, tile_line


def test_sizes_and_rates():
    assert fmt_size(64 << 10) == "64 kB" and fmt_size(16 << 20) == "16 MB"
    assert mbit(1_000_000, 0.08) == 100.0


def test_echo_summary_uses_medians_and_the_ideal_time():
    res = EchoResults()
    for up in (0.4, 0.5, 0.9):
        res.add({"bytes": 4 << 20, "up_s": up, "down_s": up / 2})
    table = res.table(rate_mbit=90.0)
    row = [line for line in table.splitlines() if line.strip().startswith("4 MB")][0].split()
    assert row[2] == "3" and float(row[3]) == 500.0 and float(row[4]) == 250.0
    assert abs(float(row[-1]) - 0.5 / ((4 << 20) * 8 / 90e6)) < 0.01
    assert "ideal" not in res.table(rate_mbit=None)
    line = tile_line({"request_id": 3, "bytes": 1 << 20, "up_s": 0.1, "down_s": 0.2, "rtt_s": 0.3})
    assert "1 MB" in line and "100.0 ms" in line and "83.9 Mbit/s" in line
