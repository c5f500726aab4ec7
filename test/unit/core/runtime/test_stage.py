"""The stage's row store: a band read inside one piece is a view (no copy), across pieces one concatenation."""

from __future__ import annotations

import torch

from intradp_ros.core.runtime.stage import RowStore


def test_rows_inside_one_band_are_views_across_bands_one_concatenation() -> None:
    full = torch.arange(2 * 12 * 3, dtype=torch.float32).view(1, 2, 12, 3)
    store = RowStore(axis=2)
    for a, b in ((0, 4), (4, 8), (8, 12)):
        store.add(a, b, full.narrow(2, a, b - a).clone())
    inside = store.get(5, 7)
    assert inside is not None and torch.equal(inside, full[:, :, 5:7])
    assert inside.data_ptr() == store.pieces[1][2].data_ptr() + 1 * 3 * 4, "a view into the band, no copy"
    across = store.get(2, 11)
    assert torch.equal(across, full[:, :, 2:11])
    assert store.get(0, 12) is not None and store.get(0, 13) is None


def test_missing_rows_are_none_until_their_band_arrives() -> None:
    store = RowStore(axis=0)
    store.add(0, 2, torch.zeros(2, 4))
    store.add(3, 5, torch.ones(2, 4))
    assert store.get(1, 4) is None
    store.add(2, 3, torch.full((1, 4), 7.0))
    assert torch.equal(store.get(1, 4)[:, 0], torch.tensor([0.0, 7.0, 1.0]))
