"""Bounded zstd: compress with the content size in the frame header, decompress only to an exact expected size.

A frame whose header does not declare exactly the size the tile's shape implies, that carries trailing bytes
or a second frame, or that is corrupt, is refused with TileError('data') before (or instead of) allocating
anything bigger than the expected output: a decompression bomb cannot expand.
"""

from __future__ import annotations

import numpy as np
import zstandard

from intradp_ros.core.tile import TileError

Payload = bytes | bytearray | memoryview
LEVEL = 1  # measured on camera frames: levels 2 and 3 are no smaller and 2-9x slower (docs/wire.md)


def compress(buf: Payload | np.ndarray, level: int = LEVEL) -> bytes:
    """One zstd frame of `buf` (any C-contiguous buffer) with its content size written into the header."""
    data = np.ascontiguousarray(buf).reshape(-1).view(np.uint8).data if isinstance(buf, np.ndarray) else buf
    return zstandard.ZstdCompressor(level=level, write_content_size=True).compress(data)


def decompress_exact(payload: Payload, expected: int) -> bytes:
    """The frame's content, which must be exactly `expected` bytes; TileError('data') otherwise."""
    data = bytes(payload) if not isinstance(payload, bytes) else payload
    try:
        declared = zstandard.frame_content_size(data)
    except zstandard.ZstdError as e:
        raise TileError("data", f"not a zstd frame: {e}") from None
    if declared != expected:
        raise TileError("data", f"zstd frame declares {declared} bytes, the tile's shape needs {expected}")
    dobj = zstandard.ZstdDecompressor().decompressobj()
    try:
        out = dobj.decompress(data)
    except zstandard.ZstdError as e:
        raise TileError("data", f"corrupt zstd frame: {e}") from None
    if not dobj.eof or len(out) != expected:
        raise TileError("data", f"zstd frame is truncated ({len(out)} of {expected} bytes)")
    if dobj.unused_data:
        raise TileError("data", f"{len(dobj.unused_data)} bytes after the zstd frame")
    return out
