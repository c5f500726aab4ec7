"""Bandwidth traces: reproducible generation, the shipped files' statistics, and parsing errors."""

from pathlib import Path

import numpy as np
import pytest

from intradp_ros.eval.traces import (
    DEFAULT_SEEDS,
    PROFILES,
    TraceError,
    format_trace,
    generate_trace,
    load_trace,
    make_shipped_traces,
    parse_trace,
)

TRACES = Path(__file__).resolve().parents[3] / "config" / "traces"


def rates(samples):
    return np.array([r for _, r in samples])


@pytest.mark.parametrize("name", ["indoor", "outdoor"])
def test_same_seed_same_trace_other_seed_other_trace(name):
    a = generate_trace(PROFILES[name], 7, duration_s=30)
    b = generate_trace(PROFILES[name], 7, duration_s=30)
    c = generate_trace(PROFILES[name], 8, duration_s=30)
    assert a == b
    assert a != c


@pytest.mark.parametrize("name,mean", [("indoor", 93.0), ("outdoor", 73.0)])
def test_shipped_traces_have_the_target_mean_and_3000_samples_every_100ms(name, mean):
    samples = load_trace(TRACES / f"{name}.txt")
    assert len(samples) == 3000
    times = np.array([t for t, _ in samples])
    assert times[0] == 0.0
    assert np.allclose(np.diff(times), 0.1)
    assert abs(rates(samples).mean() - mean) < 0.5


def test_indoor_varies_mildly_outdoor_fades_to_near_zero():
    indoor = rates(load_trace(TRACES / "indoor.txt"))
    outdoor = rates(load_trace(TRACES / "outdoor.txt"))
    assert indoor.min() > 60 and indoor.std() < 10 and indoor.std() > 1
    assert outdoor.min() < 5  # deep fades reach near zero
    assert (outdoor < 10).sum() >= 30  # more than a blip: several seconds in fades overall
    assert outdoor.std() > 2 * indoor.std()


def test_shipped_files_are_what_the_generator_makes(tmp_path):
    written = make_shipped_traces(tmp_path)
    for path in written:
        shipped = TRACES / path.name
        assert load_trace(path) == load_trace(shipped)
        header = [line for line in shipped.read_text().splitlines() if line.startswith("#")]
        assert any(f"seed={DEFAULT_SEEDS[path.stem]}" in line for line in header)


def test_format_and_parse_round_trip_with_comments_and_blank_lines():
    samples = [(0.0, 10.5), (0.1, 0.0), (0.2, 99.25)]
    text = format_trace(samples, ["a header", ""]) + "\n# trailing comment\n"
    assert parse_trace(text.replace("0.1 0.00", "0.1 0.00   # inline comment")) == samples


@pytest.mark.parametrize(
    "text,words",
    [
        ("0.0 10 3\n", "expected"),
        ("0.0 fast\n", "not numbers"),
        ("0.0 -1\n", "negative rate"),
        ("-0.1 5\n", "negative time"),
        ("0.0 5\n0.0 6\n", "does not increase"),
        ("0.0 nan\n", "non-finite"),
        ("# only a comment\n\n", "no samples"),
    ],
)
def test_parse_errors_name_the_line(text, words):
    with pytest.raises(TraceError) as err:
        parse_trace(text, source="t.txt")
    assert words in str(err.value)
    assert "t.txt" in str(err.value)


def test_missing_file_is_a_trace_error(tmp_path):
    with pytest.raises(TraceError, match="cannot read trace"):
        load_trace(tmp_path / "nope.txt")


def test_generator_rejects_bad_durations():
    with pytest.raises(ValueError):
        generate_trace(PROFILES["indoor"], 1, duration_s=0)
