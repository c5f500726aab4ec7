"""Sparse gathers: the survivors of a per-position filter, so data-dependent subsets travel instead of whole maps.

A global consumer that needs only some positions of a big tensor (KAPAO's candidates above the confidence
threshold before NMS, SCONet's voxels that became occupied) should not receive the whole tensor: each side
filters its own rows and sends only what survived. `sparse_select(mask, values)` is that filter as one graph
operator. Its result, `SparseRows`, holds the flat C-order positions of the kept entries in the mask's shape
(ascending) and their values. Because the positions are absolute and the filter is per position, the
survivors of any row ranges, merged by position, are exactly the survivors of the whole tensor: a distributed
run returns the same `SparseRows` as a local one.

The executors split it along the mask's split axis like any row-wise operator; `rows()` narrows a result to
rows of that axis and `merge()` puts pieces back together. On the wire it is a TensorTile with CODEC_SPARSE
(positions as int64, then the values; see intradp_ros.core.codec).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import prod
from typing import Any

import torch
from torch.overrides import handle_torch_function, has_torch_function

DEFAULT_DENSITY = 0.01  # expected share of positions that survive, when the model gives no hint


@dataclass
class SparseRows:
    """Kept positions of a mask (`index`, int64 [n], ascending C-order flat positions in `mask_shape`) and
    their values (`values`, [n, *feature_shape]); `density` is the model's expected survivor share (a hint for
    the scheduler's cost model, not used for the result)."""

    index: torch.Tensor
    values: torch.Tensor
    mask_shape: tuple[int, ...]
    density: float | None = None

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(self.values.shape[1:])

    @property
    def dense_shape(self) -> tuple[int, ...]:
        """Shape of the dense tensor the values were picked from (mask shape + feature shape)."""
        return tuple(self.mask_shape) + self.feature_shape

    @property
    def dtype(self) -> torch.dtype:
        return self.values.dtype

    @property
    def device(self) -> torch.device:
        return self.values.device

    @property
    def nbytes(self) -> int:
        return int(self.index.numel() * 8 + self.values.numel() * self.values.element_size())

    def __len__(self) -> int:
        return int(self.index.numel())

    def to(self, device: Any) -> SparseRows:
        return SparseRows(self.index.to(device), self.values.to(device), self.mask_shape, self.density)

    def cpu(self) -> SparseRows:
        return self.to("cpu")

    def equal(self, other: Any, atol: float = 0.0) -> bool:
        """Same positions and (within `atol`) the same values."""
        if not isinstance(other, SparseRows) or tuple(other.mask_shape) != tuple(self.mask_shape):
            return False
        if not torch.equal(self.index.cpu(), other.index.cpu()) or self.values.shape != other.values.shape:
            return False
        a, b = self.values.cpu(), other.values.cpu()
        if a.is_floating_point() and atol > 0:
            return bool(torch.allclose(a, b, rtol=0.0, atol=atol))
        return bool(torch.equal(a, b))


def _check_pair(mask: torch.Tensor, values: torch.Tensor) -> None:
    if mask.dtype != torch.bool:
        raise TypeError(f"sparse_select needs a bool mask, got {mask.dtype}")
    if mask.dim() == 0 or tuple(values.shape[: mask.dim()]) != tuple(mask.shape):
        raise ValueError(f"values {tuple(values.shape)} must start with the mask's shape {tuple(mask.shape)}")


def sparse_select(mask: torch.Tensor, values: torch.Tensor, density: float | None = None) -> SparseRows:
    """The entries of `values` where `mask` is true, with their flat positions (a graph operator: capture
    records it as one node, which the engine splits by rows like any row-wise operator).

    `density` is the expected share of true positions on real data (KAPAO candidates: well under 1%).
    """
    if has_torch_function((mask, values)):
        return handle_torch_function(sparse_select, (mask, values), mask, values, density=density)
    _check_pair(mask, values)
    flat = mask.reshape(-1)
    index = torch.nonzero(flat).reshape(-1)
    picked = values.reshape((flat.numel(),) + tuple(values.shape[mask.dim() :]))[index]
    return SparseRows(index, picked, tuple(int(d) for d in mask.shape), density)


def select_rows(
    mask: torch.Tensor,
    values: torch.Tensor,
    axis: int,
    row_start: int,
    mask_shape: Sequence[int],
    density: float | None = None,
) -> SparseRows:
    """`sparse_select` of rows [row_start, row_start + h) along `axis` of a mask of full shape `mask_shape`
    (the pieces hold only those rows); positions are those of the full mask."""
    _check_pair(mask, values)
    full = tuple(int(d) for d in mask_shape)
    h = int(mask.shape[axis])
    inner = prod(full[axis + 1 :])
    flat = mask.reshape(-1)
    local = torch.nonzero(flat).reshape(-1)
    picked = values.reshape((flat.numel(),) + tuple(values.shape[mask.dim() :]))[local]
    outer, rest = local // (h * inner), local % (h * inner)
    index = outer * (full[axis] * inner) + (rest // inner + row_start) * inner + rest % inner
    return SparseRows(index, picked, full, density)


def row_of(sr: SparseRows, axis: int) -> torch.Tensor:
    """Row along `axis` of every kept position."""
    inner = prod(sr.mask_shape[axis + 1 :])
    return (sr.index // inner) % sr.mask_shape[axis]


def rows(sr: SparseRows, axis: int, lo: int, hi: int) -> SparseRows:
    """The kept entries whose row along `axis` lies in [lo, hi)."""
    r = row_of(sr, axis)
    keep = (r >= lo) & (r < hi)
    if bool(keep.all()):
        return sr
    return SparseRows(sr.index[keep], sr.values[keep], sr.mask_shape, sr.density)


def merge(parts: Sequence[SparseRows]) -> SparseRows:
    """Pieces of disjoint rows, merged in position order (the result of filtering the whole tensor)."""
    if not parts:
        raise ValueError("merge needs at least one piece")
    if len(parts) == 1:
        return parts[0]
    index = torch.cat([p.index for p in parts])
    values = torch.cat([p.values for p in parts])
    order = torch.argsort(index, stable=True)
    return SparseRows(index[order], values[order], parts[0].mask_shape, parts[0].density)


def bytes_per_row(
    mask_shape: Sequence[int], feature_shape: Sequence[int], itemsize: int, axis: int, density: float
) -> int:
    """Expected wire bytes of one row: density x positions per row x (8-byte position + values)."""
    positions = prod(int(d) for d in mask_shape) // max(int(mask_shape[axis]), 1)
    per_entry = 8 + prod(int(d) for d in feature_shape) * itemsize
    return max(int(round(density * positions * per_entry)), 1)


__all__ = ["SparseRows", "sparse_select", "select_rows", "rows", "row_of", "merge", "bytes_per_row", "DEFAULT_DENSITY"]
