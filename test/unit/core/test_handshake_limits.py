"""Handshake checks before any work: sizes, names, fingerprints, heads and option ranges; reasons stay short."""

from __future__ import annotations

import pytest

from intradp_ros.core.handshake_limits import HandshakeLimits, check_handshake, parse_option_ranges
from intradp_ros.core.log_throttle import LogThrottle, clip

GOOD = {
    "robot": "robot1",
    "model_id": 'kapao_s6{"head":"candidates","input_size":[256,320]}',
    "weights_fingerprint": "0a" * 16,
    "graph_fingerprint": "1b" * 8,
}


def check(**changes: object) -> str:
    return check_handshake({**GOOD, **changes}, HandshakeLimits())


def test_a_good_request_passes() -> None:
    assert check() == ""
    assert check(model_id="kapao_s6") == ""
    assert check(model_id='torchvision:resnet18{"input_size":[64,64]}') == ""


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"model_id": "x" * (10 << 20)}, "field model_id is 10485760 long, over the limit of 512"),
        ({"client_profile_json": "{" * (9 << 20)}, "client_profile_json is 9437184 long"),
        ({"camera_probe": b"\0" * (17 << 20)}, "camera_probe is 17825792 long"),
        ({"robot": "robot 1"}, "not a ROS name segment"),
        ({"weights_fingerprint": "ZZ"}, "weights_fingerprint is not lowercase hex"),
        ({"model_id": 'kapao_s6{"head":"all"}'}, "not one of the allowed heads"),
        ({"model_id": 'kapao_s6{"candidate_conf":1.5}'}, "1.5 outside the allowed range [0, 1]"),
        ({"model_id": 'kapao_s6{"candidate_conf":true}'}, "outside the allowed range"),
        ({"model_id": 'kapao_s6{"input_size":[256,99999]}'}, "must be 1 to 4 integers"),
        ({"model_id": 'kapao_s6{"batch":"x"}'}, "is not allowed"),
        ({"model_id": "kapao_s6{not json"}, "JSON options of known keys"),
        ({"model_id": "torchvision:../x"}, "not a registry name"),
    ],
)
def test_bad_fields_are_refused_with_a_short_reason(changes: dict, why: str) -> None:
    got = check(**changes)
    assert why in got and len(got) < 300


def test_configured_heads_and_ranges() -> None:
    limits = HandshakeLimits(allowed_heads=("candidates",), option_ranges=parse_option_ranges("candidate_conf=0.1:0.5"))
    assert check_handshake(GOOD, limits) == ""
    assert "allowed heads" in check_handshake({**GOOD, "model_id": 'kapao_s6{"head":"detections"}'}, limits)
    assert "range [0.1, 0.5]" in check_handshake({**GOOD, "model_id": 'kapao_s6{"candidate_conf":0.6}'}, limits)
    with pytest.raises(ValueError, match="use name=lo:hi"):
        parse_option_ranges("candidate_conf=1:0")


def test_log_throttle_counts_what_it_suppressed() -> None:
    now = [0.0]
    t = LogThrottle(10.0, clock=lambda: now[0])
    assert t.hit("a") == 1  # the first line at once
    assert [t.hit("a") for _ in range(5)] == [0] * 5
    assert t.hit("b") == 1  # other keys are independent
    now[0] = 10.0
    assert t.hit("a") == 6  # the next line stands for the 5 suppressed and this one
    assert t.total == 8


def test_clip_bounds_echoed_text() -> None:
    assert clip("abc") == "abc"
    assert clip("x" * 1000, 10) == "xxxxxxxxxx... (1000 chars)"
