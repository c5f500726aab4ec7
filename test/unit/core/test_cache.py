"""cache: one root for every cache ($INTRADP_CACHE, else ~/.cache/intradp_ros), subfolders under it."""

from __future__ import annotations

from pathlib import Path

import pytest

from intradp_ros.core import cache, plan_table


def test_root_and_subfolders(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("INTRADP_CACHE", str(tmp_path))
    assert cache.default_cache_dir() == tmp_path
    assert cache.default_cache_dir("sample_data") == tmp_path / "sample_data"
    assert plan_table.default_cache_dir is cache.default_cache_dir  # one function, re-exported
    monkeypatch.setenv("INTRADP_CACHE", "")
    assert cache.default_cache_dir() == Path.home() / ".cache" / "intradp_ros"
