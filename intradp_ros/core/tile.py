"""The unit that crosses the link: a contiguous row range of one graph node's output.

`Tile` is the transport-neutral form used by the executors and transports; the ROS adapter maps it
one-to-one onto `intradp_ros/TensorTile` (see msg/TensorTile.msg), field for field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Payload encodings, equal to the TensorTile.CODEC_* constants.
CODEC_RAW = 0  # C-contiguous little-endian elements
CODEC_BITPACK = 1  # numpy.packbits (MSB first) of a 0/1 tensor
CODEC_SPARSE = 2  # variable-size survivors of a per-row filter
# Lossless compressed forms (intradp_ros/core/codecs/): the tile's `data` is always the decoded array, the codec
# only says how the payload travels, so executors never see compressed bytes.
CODEC_ZSTD = 3  # zstd frame of the raw element bytes
CODEC_ZSTD_SHUFFLE = 4  # zstd frame of the element bytes regrouped by byte position (multi-byte dtypes)
CODEC_BITPACK_ZSTD = 5  # zstd frame of the CODEC_BITPACK payload
CODEC_DELTA_ZSTD = 6  # uint8: zstd frame of left differences (mod 256) along the last axis
CODEC_WEBP = 7  # uint8 [1.., 3, h, w] image rows: one lossless WebP picture
CODEC_SPARSE_ZSTD = 8  # CODEC_SPARSE with delta-coded positions in the smallest width, zstd-compressed
CODEC_CAMERA = 9  # the graph input as the camera's own JPEG/PNG bytes, decoded + letterboxed by the receiver
# Lossy, opt-in only (an error budget), never chosen by default: float32 tiles as float16, or int8 with one scale.
CODEC_FP16 = 10  # float32 tile sent as IEEE float16 (relative error <= 2**-11 in range)
CODEC_INT8 = 11  # float32 tile sent as a float32 scale then int8 values: x ~ q * scale, |error| <= scale / 2
# Lossless again (numbered after the lossy ones; the solver may choose it like the other lossless codecs).
CODEC_GREEN_DELTA_ZSTD = 12  # uint8 [.., 3, h, w] RGB rows: R-G, G, B-G (mod 256), left differences, one zstd frame

# Flags, equal to TensorTile.FLAG_*.
FLAG_LAST = 1
FLAG_ABORT = 2
FLAG_START = 4  # the robot started a request whose server half receives no data tile (payload empty)
FLAGS_WITHOUT_PAYLOAD = FLAG_ABORT | FLAG_START


class TileError(ValueError):
    """A tile that must be dropped; `field` names the offending field so logs say what was wrong."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"bad tile field '{field_name}': {reason}")
        self.field = field_name
        self.reason = reason


@dataclass(frozen=True)
class Tile:
    """Rows [row_start, row_stop) along `axis` of node `node_id`'s output for one request.

    `data` holds exactly those rows (its shape along `axis` is row_stop - row_start unless the codec is
    CODEC_SPARSE, where it holds the survivors [n, ...] of a per-position filter over those rows and `index`
    their n flat positions in the node's mask, see core/sparse.py).
    """

    request_id: int
    plan_id: int
    node_id: int
    axis: int
    row_start: int
    row_stop: int
    data: np.ndarray
    codec: int = CODEC_RAW
    flags: int = 0
    robot: str = ""
    index: np.ndarray | None = field(default=None, compare=False)  # sparse codecs: int64 positions, one per entry
    encoded: bytes | None = field(default=None, compare=False)  # CODEC_CAMERA (sender side): the camera payload
    meta: dict[str, Any] = field(default_factory=dict, compare=False)  # transport-local info (timestamps), never sent

    @property
    def nbytes(self) -> int:
        """Payload bytes on the wire: the encoded size once the wire codec has encoded or decoded the tile
        (`meta["wire_bytes"]`), else the uncompressed size (bit-packed size for bitpack codecs, positions included
        for sparse tiles), which compressed codecs undercut."""
        wire = self.meta.get("wire_bytes")
        if wire is not None:
            return int(wire)
        if self.codec in (CODEC_BITPACK, CODEC_BITPACK_ZSTD):
            return (int(self.data.size) + 7) // 8
        return int(self.data.nbytes) + (int(self.index.nbytes) if self.index is not None else 0)
