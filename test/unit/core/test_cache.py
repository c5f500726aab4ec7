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


def test_write_atomic_makes_the_folder_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    from intradp_ros.core.cache import write_atomic

    target = tmp_path / "a" / "b" / "x.json"
    write_atomic(target, "first")
    assert target.read_text() == "first"
    write_atomic(str(target), "second")
    assert target.read_text() == "second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.json"], "no temporary file left behind"
