"""Calibration frame times shared between client starts: written once, read back only for the same graph."""

import json

import pytest

from intradp_ros.core.calibration_file import FORMAT, read_frame_times, write_frame_times


def test_times_round_trip_for_the_same_graph_only(tmp_path):
    path = tmp_path / "sub" / "calibration.json"
    assert read_frame_times(path, "g1") is None, "no file: the client times its own frames"
    write_frame_times(path, "g1", [2.5, 2.4, 2.6])
    assert read_frame_times(path, "g1") == [2.5, 2.4, 2.6]
    assert read_frame_times(path, "g2") is None, "another graph's frames must not calibrate this one"
    assert not list(path.parent.glob("*.tmp")), "the atomic write leaves no temporary file"


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        json.dumps([1.0]),
        json.dumps({"format": "other", "graph": "g", "frame_s": [1.0]}),
        json.dumps({"format": FORMAT, "graph": "g", "frame_s": []}),
        json.dumps({"format": FORMAT, "graph": "g", "frame_s": [1.0, -2.0]}),
        json.dumps({"format": FORMAT, "graph": "g", "frame_s": [1.0, "2"]}),
        json.dumps({"format": FORMAT, "graph": "g", "frame_s": [True]}),
        json.dumps({"format": FORMAT, "graph": "g", "frame_s": "1.0"}),
    ],
)
def test_a_malformed_file_is_ignored(tmp_path, content):
    path = tmp_path / "calibration.json"
    path.write_text(content)
    assert read_frame_times(path, "g") is None


def test_bad_times_are_not_written(tmp_path):
    for bad in ([], [0.0], [float("nan")], [1.0, float("inf")]):
        with pytest.raises(ValueError):
            write_frame_times(tmp_path / "c.json", "g", bad)
    assert not (tmp_path / "c.json").exists()
