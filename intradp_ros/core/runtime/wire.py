"""The wire as the runtime sees it: which dtypes can travel, the codec a tile gets, tiles built from computed
values, and ONE receive-side validator (`check_tile`) that checks a decoded tile against the running plan.

Field-level checks of raw wire fields (sizes, flags, widths) live in `intradp_ros.core.codec.TileValidator`;
the dtype table is the codec's (`WIRE_DTYPES`), never a second list.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np
import torch

from intradp_ros.core.codec import (
    DENSE_CODECS,
    SPARSE_CODECS,
    UNCOMPRESSED,
    WIRE_DTYPES,
    choose_sparse_codec,
)
from intradp_ros.core.codec import choose_codec as choose_wire_codec
from intradp_ros.core.codecs.basic import BITPACK_DTYPES
from intradp_ros.core.codecs.camera import camera_payload
from intradp_ros.core.codecs.image import rgb_layout, webp_layout
from intradp_ros.core.graph import Graph, Node, Range
from intradp_ros.core.sparse import SparseRows
from intradp_ros.core.sparse import row_of as sparse_rows_of
from intradp_ros.core.tile import (
    CODEC_BITPACK,
    CODEC_BITPACK_ZSTD,
    CODEC_CAMERA,
    CODEC_GREEN_DELTA_ZSTD,
    CODEC_SPARSE,
    CODEC_WEBP,
    Tile,
    TileError,
)

AXIS_WHOLE = 255  # Tile.axis for a 0-d tensor; other unsplit tensors travel as all rows along axis 0

TileKey = tuple[int, int, int]  # (node, plan row start, plan row stop)
BITPACK_CODECS = frozenset((CODEC_BITPACK, CODEC_BITPACK_ZSTD))


# Why a side aborted a request. An abort tile carries no payload: the cause travels in its `axis` field, the
# node and band rows where it happened in node_id / row_start / row_stop, so the peer can name it too.
ABORT_FAILED = 0
ABORT_OPERATOR = 1
ABORT_BAD_TILE = 2
ABORT_SEND = 3
ABORT_LOST_TILE = 4
ABORT_LOCAL = 5
ABORT_REFUSED = 6
ABORT_CAUSES = {
    ABORT_FAILED: "it failed",
    ABORT_OPERATOR: "an operator raised",
    ABORT_BAD_TILE: "it received a bad tile",
    ABORT_SEND: "a tile could not be sent",
    ABORT_LOST_TILE: "a tile never arrived",
    ABORT_LOCAL: "it was cancelled",
    ABORT_REFUSED: "it refused the request (more requests of this robot in flight than allowed)",
}


def describe_abort(g: Graph, tile: Tile) -> str:
    """The cause an abort tile names, in words (untrusted fields: unknown values are said as such)."""
    cause = ABORT_CAUSES.get(tile.axis, f"unknown cause {tile.axis}")
    if tile.axis == ABORT_FAILED or not 0 <= tile.node_id < len(g.nodes):
        return cause
    n = g.nodes[tile.node_id]
    return f"{cause} at node {n.index} '{n.name}' ({n.op}) rows [{tile.row_start}, {tile.row_stop})"


def wire_dtype_name(dtype: torch.dtype) -> str | None:
    """The wire's name for a torch dtype, or None when the wire cannot carry it (e.g. bfloat16)."""
    name = str(dtype).replace("torch.", "")
    return name if name in WIRE_DTYPES else None


def wire_rows(node: Node, start: int, stop: int) -> tuple[int, int, int]:
    """(axis, row_start, row_stop) on the wire for plan rows [start, stop) of `node`. A node without a
    split axis has one plan row, the whole tensor: it travels as all rows of its axis 0."""
    if node.axis is not None:
        return node.axis, start, stop
    if len(node.shape) == 0:
        return AXIS_WHOLE, 0, 1
    return 0, 0, int(node.shape[0])


def tile_key(g: Graph, tile: Tile) -> TileKey:
    """(node, plan rows) of a tile: unsplit nodes' whole-tensor tiles are plan rows [0, 1)."""
    if 0 <= tile.node_id < len(g.nodes) and g.nodes[tile.node_id].axis is None:
        return (tile.node_id, 0, 1)
    return (tile.node_id, tile.row_start, tile.row_stop)


def choose_codec(node: Node, arr: np.ndarray, enabled: Collection[int] = UNCOMPRESSED, source: Any = None) -> int:
    """The codec of a dense tile among the sender's `enabled` ones: the runtime's one choice point, deferring to
    the codec module's rules (0/1 grids bit-packed, compression only where enabled, the camera's own bytes for a
    tagged whole input; see core/codec.choose_codec)."""
    return choose_wire_codec(node, arr, enabled, source=source)


def planned_codec(node: Node, arr: np.ndarray, planned: int | None) -> int | None:
    """The plan's codec for this dense tile if it can carry it (None: fall back to the sender's own rules). A 0/1
    grid that breaks its promise (a value above 1) cannot go bit-packed, a tile outside WebP's (or RGB planes')
    layout cannot go as WebP (or green_delta_zstd), and a planned camera file is sent only when this input carries
    one and passthrough is on (else pixels: never a wrong result): those fall back instead of failing the request."""
    if planned is None or planned in SPARSE_CODECS or planned == CODEC_CAMERA:
        return None  # the camera file goes only where the sender's rules find it (a tagged whole input, enabled)
    if planned in BITPACK_CODECS and (arr.dtype.name not in BITPACK_DTYPES or (arr.size and int(arr.max()) > 1)):
        return None
    if planned == CODEC_WEBP and webp_layout(arr.shape) is not None:
        return None
    if planned == CODEC_GREEN_DELTA_ZSTD and (arr.dtype != np.uint8 or rgb_layout(arr.shape) is not None):
        return None
    return planned


def make_tile(
    request_id: int,
    plan_id: int,
    node: Node,
    start: int,
    stop: int,
    value: Any,
    flags: int,
    robot: str,
    codecs: Collection[int] = UNCOMPRESSED,
    planned: int | None = None,
) -> Tile:
    """The tile that carries plan rows [start, stop) of `node` (value: those rows, a tensor or SparseRows), in
    the plan's codec `planned` for this node and direction when it applies (a lossless one the cost model chose),
    else a codec among `codecs`; the camera's own bytes (CODEC_CAMERA, when enabled) win over both. Raises
    TileError naming the dtype when the wire cannot carry it."""
    axis, w0, w1 = wire_rows(node, start, stop)
    if isinstance(value, SparseRows):
        vals = value.values.detach().cpu().contiguous().numpy()
        _check_dtype(node, vals)
        return Tile(
            request_id,
            plan_id,
            node.index,
            axis,
            w0,
            w1,
            vals,
            planned if planned in SPARSE_CODECS else choose_sparse_codec(codecs),
            flags,
            robot,
            index=value.index.cpu().numpy(),
        )
    data = value.detach()
    if wire_dtype_name(data.dtype) is None:
        raise TileError("dtype", f"node {node.index} '{node.name}': {data.dtype} cannot cross the wire")
    if data.device.type != "cpu":
        data = data.cpu()  # the only host synchronisation of a band on CUDA: its tile leaves the device
    arr = data.contiguous().numpy()
    codec = choose_codec(node, arr, codecs, source=value)
    if codec != CODEC_CAMERA:
        codec = planned_codec(node, arr, planned) or codec
    encoded = camera_payload(value) if codec == CODEC_CAMERA else None
    return Tile(request_id, plan_id, node.index, axis, w0, w1, arr, codec, flags, robot, encoded=encoded)


def _check_dtype(node: Node, arr: np.ndarray) -> None:
    if arr.dtype.name not in WIRE_DTYPES:
        raise TileError("dtype", f"node {node.index} '{node.name}': {arr.dtype} cannot cross the wire")


def check_tile(
    g: Graph, tile: Tile, request_id: int, plan_id: int, plan_name: str, expected: Any, device: torch.device
) -> tuple[TileKey, Any]:
    """Check a received data tile against the running request and return (key, value on `device`).

    Raises TileError(field, reason) for the first field that does not fit: request, plan, node, an
    unexpected row range under this plan, axis/rows, codec, dtype, shape, sparse positions."""
    if tile.request_id != request_id:
        raise TileError("request_id", f"{tile.request_id} is not the running request {request_id}")
    if tile.plan_id != plan_id:
        raise TileError("plan_id", f"{tile.plan_id} is not the request's plan {plan_id}")
    if not 0 <= tile.node_id < len(g.nodes):
        raise TileError("node_id", f"{tile.node_id} not in graph ({len(g.nodes)} nodes)")
    key = tile_key(g, tile)
    if key not in expected:
        raise TileError("row_start", f"unexpected tile node {key[0]} rows [{key[1]}, {key[2]}) under plan {plan_name}")
    node = g.nodes[tile.node_id]
    want = wire_rows(node, key[1], key[2])
    if (tile.axis, tile.row_start, tile.row_stop) != want:
        raise TileError(
            "axis",
            f"axis/rows {tile.axis} [{tile.row_start}, {tile.row_stop}) do not match node {node.index} "
            f"(expected {want})",
        )
    if node.is_sparse:
        return key, _check_sparse(tile, node, key, device)
    if tile.codec not in DENSE_CODECS:  # decoded by the transport: the payload is the node's dense rows
        raise TileError("codec", f"codec {tile.codec} is not one of node {node.index}'s")
    data = tile.data
    if not isinstance(data, np.ndarray):
        raise TileError("data", "not a numpy array")
    want_dtype = wire_dtype_name(node.dtype)
    if data.dtype.name != want_dtype:
        raise TileError("dtype", f"{data.dtype.name} != {want_dtype}")
    shape = node.row_shape(key[1], key[2])
    if tuple(data.shape) != tuple(shape):
        raise TileError("shape", f"{tuple(data.shape)} != {tuple(shape)}")
    if not data.flags.writeable:
        data = data.copy()
    t = torch.from_numpy(data)
    return key, (t.to(device) if device.type != "cpu" else t)


def _check_sparse(tile: Tile, node: Node, key: TileKey, device: torch.device) -> SparseRows:
    """A sparse tile: entries of the node's dtype and feature shape, one position each, ascending, every
    position inside the node's mask and inside the tile's rows."""
    if tile.codec not in SPARSE_CODECS or tile.index is None:
        raise TileError("codec", f"node {node.index} is sparse: codec {CODEC_SPARSE} with positions expected")
    data, index = tile.data, tile.index
    if not isinstance(data, np.ndarray) or not isinstance(index, np.ndarray):
        raise TileError("data", "not numpy arrays")
    want_dtype = wire_dtype_name(node.dtype)
    if data.dtype.name != want_dtype:
        raise TileError("dtype", f"{data.dtype.name} != {want_dtype}")
    mask_shape = tuple(node.shape[: node.sparse_rank])
    feat = tuple(node.shape[node.sparse_rank :])
    if data.ndim != 1 + len(feat) or tuple(data.shape[1:]) != feat or index.shape != (data.shape[0],):
        raise TileError("shape", f"entries {data.shape} / positions {index.shape} do not fit [n, *{list(feat)}]")
    idx = torch.from_numpy(index.astype(np.int64, copy=True))
    if idx.numel():
        total = int(np.prod(mask_shape))
        if bool((idx[1:] <= idx[:-1]).any()) or int(idx[0]) < 0 or int(idx[-1]) >= total:
            raise TileError("data", "sparse positions are not ascending inside the node's mask")
        sr = SparseRows(idx, torch.empty(0), mask_shape)
        r = sparse_rows_of(sr, node.axis or 0)
        if int(r.min()) < key[1] or int(r.max()) >= key[2]:
            raise TileError("data", f"sparse positions outside rows [{key[1]}, {key[2]})")
    vals = torch.from_numpy(data if data.flags.writeable else data.copy())
    out = SparseRows(idx, vals, mask_shape, node.density)
    return out.to(device) if device.type != "cpu" else out


# dtype names per torch dtype, from the codec's one table (kept for older imports)
NUMPY_DTYPES: dict[torch.dtype, str] = {
    d: n
    for d in (getattr(torch, n, None) for n in WIRE_DTYPES)
    if d is not None
    for n in [str(d).replace("torch.", "")]
}

__all__ = [
    "AXIS_WHOLE",
    "NUMPY_DTYPES",
    "Range",
    "TileKey",
    "check_tile",
    "choose_codec",
    "make_tile",
    "planned_codec",
    "tile_key",
    "wire_dtype_name",
    "wire_rows",
]
