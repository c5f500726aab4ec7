"""What the server checks in a handshake request before it builds, profiles or solves anything.

A handshake is cheap to send and expensive to answer (a model variant is a model copy of up to ~0.3 GB, a plan-book
solve takes minutes), so every field is checked first, against limits that are configuration, not code:
- sizes: each text/bytes field has a maximum length (a 10 MB model id is refused by its length, never parsed,
  echoed or logged whole);
- shapes: the robot is one ROS name segment, fingerprints are short lowercase hex, the model id is
  `name{json options}` with known option keys;
- values: the output head is one of `allowed_heads`, numeric options lie in `option_ranges`, sizes are small
  positive integers.
`check_handshake` returns the refusal reason ('' when the request may proceed); reasons quote only clipped text.
ROS-free (the server node calls it first thing in its handshake handler), so it is unit-tested without a master.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from intradp_ros.core.log_throttle import clip
from intradp_ros.core.session import ModelConfig, ReplicaError

_ROBOT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_HEX_RE = re.compile(r"^[0-9a-f]*$")
_MODEL_RE = re.compile(r"^(torchvision:)?[A-Za-z][A-Za-z0-9_]{0,63}$")  # registry names (models/registry.py)
HEADS = ("detections", "candidates", "logits", "completion")  # the registry's heads (KAPAO, SCONet)
SIZE_OPTIONS = ("input_size", "grid_xzy")
MAX_EXTENT = 8192  # largest input_size / grid_xzy entry accepted


def parse_option_ranges(text: str) -> dict[str, tuple[float, float]]:
    """'candidate_conf=0:1,other=lo:hi' -> {name: (lo, hi)} (ValueError naming a bad entry)."""
    out: dict[str, tuple[float, float]] = {}
    for item in str(text or "").replace(" ", "").split(","):
        if not item:
            continue
        name, sep, rng = item.partition("=")
        lo_text, colon, hi_text = rng.partition(":")
        try:
            lo, hi = float(lo_text), float(hi_text)
        except ValueError:
            lo = hi = math.nan
        if not sep or not colon or not name or not (lo <= hi):
            raise ValueError(f"option range {item!r}: use name=lo:hi with lo <= hi")
        out[name] = (lo, hi)
    return out


@dataclass(frozen=True)
class HandshakeLimits:
    """Field limits of a handshake request (bytes or characters) and the option values a server accepts."""

    max_robot_chars: int = 64
    max_model_id_chars: int = 512
    max_fingerprint_chars: int = 64
    max_profile_bytes: int = 8 << 20  # a client profile is ~100 B per graph node and tile size
    max_decoder_json_bytes: int = 4096
    max_camera_probe_bytes: int = 16 << 20
    allowed_heads: tuple[str, ...] = HEADS
    option_ranges: Mapping[str, tuple[float, float]] = field(default_factory=lambda: {"candidate_conf": (0.0, 1.0)})

    def field_limits(self) -> dict[str, int]:
        return {
            "robot": self.max_robot_chars,
            "model_id": self.max_model_id_chars,
            "weights_fingerprint": self.max_fingerprint_chars,
            "graph_fingerprint": self.max_fingerprint_chars,
            "client_profile_json": self.max_profile_bytes,
            "decoder_json": self.max_decoder_json_bytes,
            "camera_probe": self.max_camera_probe_bytes,
        }


def check_handshake(fields: Mapping[str, Any], limits: HandshakeLimits) -> str:
    """Why the request must be refused before any work ('' when it may proceed). `fields`: the request's fields
    by name (a ROS HandshakeRequest's slots); missing ones count as empty."""
    for name, limit in limits.field_limits().items():
        value = fields.get(name)
        n = len(value) if isinstance(value, (str, bytes, bytearray, list, tuple)) else 0
        if n > limit:
            return f"field {name} is {n} long, over the limit of {limit}"
    robot = str(fields.get("robot") or "")
    if robot and not _ROBOT_RE.match(robot):
        return f"robot {clip(robot, 64)!r} is not a ROS name segment"
    for name in ("weights_fingerprint", "graph_fingerprint"):
        if not _HEX_RE.match(str(fields.get(name) or "")):
            return f"field {name} is not lowercase hex"
    return check_model_id(str(fields.get("model_id") or ""), limits)


def check_model_id(model_id: str, limits: HandshakeLimits) -> str:
    """Why a model id must be refused before a replica is looked up or built ('' when its options are allowed)."""
    try:
        cfg = ModelConfig.from_model_id(model_id)
    except ReplicaError:
        return f"model id {clip(model_id, 120)!r} is not a name with JSON options of known keys"
    if not _MODEL_RE.match(cfg.name):
        return f"model name {clip(cfg.name, 64)!r} is not a registry name"
    for key, value in cfg.options.items():
        why = _check_option(key, value, limits)
        if why:
            return f"model option {key}: {why}"
    return ""


def _check_option(key: str, value: Any, limits: HandshakeLimits) -> str:
    if key == "head":
        if value not in limits.allowed_heads:
            return f"head {clip(value, 40)!r} is not one of the allowed heads {list(limits.allowed_heads)}"
        return ""
    if key in SIZE_OPTIONS:
        ok = isinstance(value, list) and 1 <= len(value) <= 4
        ok = ok and all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_EXTENT for v in value)
        return "" if ok else f"must be 1 to 4 integers in 1..{MAX_EXTENT}, got {clip(value, 60)}"
    if key in limits.option_ranges:
        lo, hi = limits.option_ranges[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= float(value) <= hi:
            return f"{clip(value, 40)} outside the allowed range [{lo:g}, {hi:g}]"
        return ""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_EXTENT:
        return ""  # num_classes, batch: small positive integers; the replica must match a served one anyway
    return f"value {clip(value, 40)} is not allowed"
