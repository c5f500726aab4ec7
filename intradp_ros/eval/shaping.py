"""Token-bucket (tbf) shaping of a veth end's egress; both ends shaped gives both directions.

The bucket (tbf `burst`) follows the rate: `burst_s` of traffic at the current rate, never under
`MIN_BURST_BYTES`. A fixed large bucket would let every transfer that starts after an idle gap cross at line
rate for its first `burst` bytes: with the rates divided by a time-dilation factor k a 256 KiB bucket is
0.45 s of traffic at 4.65 Mbit/s, so short frames and probes would not pay for the link at all. Every rate
change (`change_tbf`, hence trace replay) recomputes the bucket. See docs/testbed.md for the measurements.
"""

from __future__ import annotations

import json
import math

from intradp_ros.eval.sysexec import TestbedError, run_cmd

LATENCY_S = 0.05  # the queue holds this much traffic at the current rate ...
# ... but at least this many bytes. A queue sized in time at dilated rates (50 ms at 4.65 Mbit/s = 29 kB) overflows
# under one TCP window, and every drop costs a retransmission timeout that the undilated link would not have: in
# bytes, the queue of a 93 Mbit/s link with 50 ms of buffer does not shrink when the rate is divided by k. Unlike
# the bucket, the queue grants nothing for free: it only holds packets until the rate lets them go.
MIN_QUEUE_BYTES = 256 * 1024
MIN_RATE_MBIT = 0.1  # tbf refuses rate 0; deep fades in traces are clamped to this
BURST_S = 0.003  # the bucket holds this much traffic at the current rate ...
# ... but never less than this: veth sends GSO/TSO super-packets of up to 64 KiB, which tbf splits into MTU
# segments when they exceed the bucket, and its watchdog timer must refill at least one full-size packet per
# wake-up. Measured on this testbed (docs/testbed.md, `python -m intradp_ros.eval.link_check --floor`):
# 1 s transfers keep 93-96 % of the rate as goodput at 4.65 and at 110 Mbit/s with buckets down to 2 KiB
# (hrtimer watchdog); 4 KiB (under 3 full-size packets) keeps a factor two of room.
MIN_BURST_BYTES = 4 * 1024


def validate_rate(rate_mbit: float) -> float:
    """Return the rate tbf will be given; ValueError for non-numbers, non-finite or negative rates."""
    try:
        rate = float(rate_mbit)
    except (TypeError, ValueError):
        raise ValueError(f"rate must be a number of Mbit/s, got {rate_mbit!r}") from None
    if not math.isfinite(rate) or rate < 0:
        raise ValueError(f"rate must be finite and >= 0 Mbit/s, got {rate_mbit!r}")
    return max(rate, MIN_RATE_MBIT)


def burst_bytes(rate_mbit: float, burst_s: float = BURST_S, floor_bytes: int = MIN_BURST_BYTES) -> int:
    """Bucket size for `rate_mbit`: `burst_s` of traffic at that rate, at least `floor_bytes`."""
    rate = validate_rate(rate_mbit)
    if not (burst_s >= 0 and math.isfinite(burst_s)):
        raise ValueError(f"burst_s must be >= 0 and finite, got {burst_s!r}")
    if not isinstance(floor_bytes, int) or floor_bytes < 1600:
        raise ValueError(f"floor_bytes must be an int >= 1600 (one full-size packet), got {floor_bytes!r}")
    return max(floor_bytes, int(math.ceil(rate * 1e6 / 8.0 * burst_s)))


def queue_bytes(rate_mbit: float, burst: int) -> int:
    """tbf's queue limit: `LATENCY_S` of traffic at the rate plus the bucket, at least `MIN_QUEUE_BYTES`."""
    rate = validate_rate(rate_mbit)
    return max(MIN_QUEUE_BYTES, int(math.ceil(rate * 1e6 / 8.0 * LATENCY_S)) + int(burst))


def tbf_args(rate_mbit: float, burst: int) -> list:
    """The `tc qdisc ... tbf` arguments for a rate in Mbit/s and a bucket in bytes."""
    limit = queue_bytes(rate_mbit, burst)
    return ["tbf", "rate", f"{int(round(rate_mbit * 1000))}kbit", "burst", str(int(burst)), "limit", str(limit)]


def add_tbf(ns: str, dev: str, rate_mbit: float, burst: int = 0) -> int:
    """Install the root tbf on `dev` in `ns`; the bucket is `burst` bytes, or `burst_bytes(rate)` when 0.
    Returns the bucket used."""
    rate = validate_rate(rate_mbit)
    burst = int(burst) or burst_bytes(rate)
    run_cmd(["tc", "-n", ns, "qdisc", "add", "dev", dev, "root", *tbf_args(rate, burst)], f"shaping {dev} in {ns}")
    return burst


def change_tbf(ns: str, dev: str, rate_mbit: float, burst: int = 0) -> int:
    """Change rate and bucket of the existing tbf on the fly (queued packets stay); returns the bucket used."""
    rate = validate_rate(rate_mbit)
    burst = int(burst) or burst_bytes(rate)
    run_cmd(
        ["tc", "-n", ns, "qdisc", "change", "dev", dev, "root", *tbf_args(rate, burst)],
        f"changing the rate of {dev} in {ns}",
    )
    return burst


def remove_qdisc(ns: str, dev: str) -> None:
    """Remove the root qdisc of `dev`; quiet if it (or the namespace) is already gone."""
    run_cmd(["tc", "-n", ns, "qdisc", "del", "dev", dev, "root"], f"removing qdisc of {dev} in {ns}", check=False)


def _tbf_options(ns: str, dev: str) -> dict:
    proc = run_cmd(["tc", "-n", ns, "-j", "qdisc", "show", "dev", dev], f"reading qdisc of {dev} in {ns}")
    for q in json.loads(proc.stdout or "[]"):
        if q.get("kind") == "tbf":
            return dict(q["options"])
    raise TestbedError(f"no tbf qdisc on {dev} in {ns}")


def current_rate_bits(ns: str, dev: str) -> int:
    """Rate of the root tbf on `dev` in bit/s as the kernel reports it (for checks)."""
    return int(_tbf_options(ns, dev)["rate"]) * 8  # tc's JSON gives bytes per second


def sent_bytes(ns: str, dev: str) -> int:
    """Bytes the root tbf on `dev` has sent so far (the kernel's counter, for link-share measurements)."""
    proc = run_cmd(["tc", "-n", ns, "-s", "-j", "qdisc", "show", "dev", dev], f"reading qdisc stats of {dev} in {ns}")
    for q in json.loads(proc.stdout or "[]"):
        if q.get("kind") == "tbf":
            return int(q["bytes"])
    raise TestbedError(f"no tbf qdisc on {dev} in {ns}")


def current_burst_bytes(ns: str, dev: str) -> int:
    """Bucket of the root tbf on `dev` in bytes as the kernel reports it (for checks)."""
    return int(_tbf_options(ns, dev)["burst"])
