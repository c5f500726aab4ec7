"""tools/prune.sh (`make prune`) on a scratch cache: only what no existing clone uses goes."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _req_hash() -> str:
    text = (ROOT / "requirements.txt").read_bytes() + (ROOT / "constraints.txt").read_bytes()
    version = subprocess.run(["/usr/bin/python3", "--version"], capture_output=True, text=True).stdout
    return hashlib.sha256(text + version.encode()).hexdigest()[:16]


def _prune(cache: Path, **env: str) -> str:
    full = dict(os.environ, INTRADP_CACHE=str(cache), **env)
    full.pop("INTRADP_WS", None)
    out = subprocess.run(["bash", str(ROOT / "tools/prune.sh")], env=full, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_prune_keeps_current_and_live_clones_removes_the_rest(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    this_ws = cache / f"ws-{hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]}"
    other_clone = tmp_path / "other_clone"
    other_clone.mkdir()
    for d in (this_ws, cache / "ws-gone", cache / "ws-other"):
        (d / "src").mkdir(parents=True)
    (cache / "ws-gone" / "src" / "intradp_ros").symlink_to(tmp_path / "deleted_clone")
    (cache / "ws-other" / "src" / "intradp_ros").symlink_to(other_clone)
    current, old, used = (cache / f"venv-{h}" for h in (_req_hash(), "old0000000000000", "used000000000000"))
    for v in (current, old, used):
        v.mkdir()
        (v / "big").write_bytes(b"x" * 1000)
    (cache / "pip-old0000000000000.log").write_text("log")
    (other_clone / ".venv").symlink_to(used)

    dry = _prune(cache, DRY="1")
    assert "would remove" in dry and old.exists() and (cache / "ws-gone").exists()
    _prune(cache)
    assert sorted(p.name for p in cache.iterdir()) == sorted([this_ws.name, "ws-other", current.name, used.name])
    assert "nothing to prune" in _prune(cache)
    _prune(cache, ALL="1")  # other clones' too
    assert sorted(p.name for p in cache.iterdir()) == sorted([this_ws.name, current.name])
