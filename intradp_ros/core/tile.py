"""The unit that crosses the link: a contiguous row range of one graph node's output.

`Tile` is the transport-neutral form used by the executors and transports; the ROS adapter maps it
one-to-one onto `intradp_ros/TensorTile` (see msg/TensorTile.msg), field for field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

# Payload encodings, equal to the TensorTile.CODEC_* constants.
CODEC_RAW = 0  # C-contiguous little-endian elements
CODEC_BITPACK = 1  # numpy.packbits (MSB first) of a 0/1 tensor
CODEC_SPARSE = 2  # variable-size survivors of a per-row filter

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
    index: Optional[np.ndarray] = field(default=None, compare=False)  # CODEC_SPARSE: int64 positions, one per entry
    meta: dict = field(default_factory=dict, compare=False)  # transport-local info (timestamps), never sent

    @property
    def nbytes(self) -> int:
        """Payload bytes on the wire (bit-packed size for CODEC_BITPACK, positions included for CODEC_SPARSE)."""
        if self.codec == CODEC_BITPACK:
            return (int(self.data.size) + 7) // 8
        return int(self.data.nbytes) + (int(self.index.nbytes) if self.index is not None else 0)
