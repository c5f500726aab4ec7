"""core/tile.py's wire constants equal msg/TensorTile.msg's, and every codec constant names a registered codec."""

from __future__ import annotations

import re
from pathlib import Path

from intradp_ros.core import tile
from intradp_ros.core.codecs import registered

MSG = Path(__file__).resolve().parents[3] / "msg" / "TensorTile.msg"


def _msg_constants() -> dict[str, int]:
    found = re.findall(r"^uint8 ((?:CODEC|FLAG)_[A-Z0-9_]+)=(\d+)", MSG.read_text(), flags=re.MULTILINE)
    return {name: int(value) for name, value in found}


def test_tile_constants_equal_the_message_constants() -> None:
    msg = _msg_constants()
    ours = {n: getattr(tile, n) for n in dir(tile) if re.fullmatch(r"(CODEC|FLAG)_[A-Z0-9_]+", n)}
    assert "CODEC_GREEN_DELTA_ZSTD" in msg and msg == ours
    codecs = [v for n, v in msg.items() if n.startswith("CODEC_")]
    assert len(set(codecs)) == len(codecs), "two codecs share a wire value"


def test_every_codec_constant_but_the_camera_is_registered_under_its_name() -> None:
    reg = registered()
    for name, value in _msg_constants().items():
        if name.startswith("CODEC_") and name != "CODEC_CAMERA":  # camera registers where models/ is imported
            assert reg[value].name == name.removeprefix("CODEC_").lower(), name
