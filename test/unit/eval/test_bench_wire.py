"""scripts/bench_wire on small generated images: JSON keys, exactness, the passthrough entry for JPEG only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from intradp_ros.eval.bench_wire import main

KEYS = {"codec", "bytes", "ratio", "encode_ms", "decode_ms", "exact"}
SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "bench_wire"


def _pixels(h: int = 40, w: int = 56) -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 4, yy * 6, xx + yy], axis=-1) + rng.integers(0, 4, size=(h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _run(capsys, path: Path) -> list:  # type: ignore[no-untyped-def]
    assert main(["--image", str(path), "--json", "--repeat", "1"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".npy"])
def test_json_lists_every_codec_exactly(tmp_path: Path, capsys, suffix: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / f"frame{suffix}"
    if suffix == ".npy":
        np.save(path, _pixels())
    else:
        Image.fromarray(_pixels()).save(path)
    rows = _run(capsys, path)
    assert all(set(r) == KEYS for r in rows)
    by = {r["codec"]: r for r in rows}
    assert {"raw", "zstd", "delta_zstd", "green_delta_zstd", "webp"} <= set(by)
    assert all(r["exact"] is True for r in rows)
    assert by["raw"]["bytes"] == 40 * 56 * 3 and by["raw"]["ratio"] == 1.0
    assert by["delta_zstd"]["bytes"] < by["raw"]["bytes"]
    if suffix == ".npy":
        assert "camera" not in by
    else:
        assert by["camera"]["bytes"] == path.stat().st_size + 20


def test_bad_files_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "x.npy"
    np.save(bad, np.zeros((4, 4), np.float32))
    assert main(["--image", str(bad)]) == 2
    (tmp_path / "y.png").write_bytes(b"not an image")
    assert main(["--image", str(tmp_path / "y.png")]) == 2


def test_script_runs_as_a_program(tmp_path: Path) -> None:
    path = tmp_path / "f.jpg"
    Image.fromarray(_pixels()).save(path, quality=90)
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--image", str(path), "--json", "--repeat", "1"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert {r["codec"] for r in json.loads(out.stdout)} >= {"raw", "camera"}


def test_profile_prints_codec_profiles(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from intradp_ros.core.codecs.profile import CodecProfile

    path = tmp_path / "f.png"
    Image.fromarray(_pixels()).save(path)
    assert main(["--image", str(path), "--profile", "robot", "--repeat", "1"]) == 0
    profiles = [CodecProfile.from_json(line) for line in capsys.readouterr().out.splitlines()]
    assert {p.name for p in profiles} == {"raw", "zstd", "delta_zstd", "green_delta_zstd", "webp"}
    assert all(p.side == "robot" and p.dtype == "uint8" and p.samples == 1 for p in profiles)
    assert next(p for p in profiles if p.name == "raw").ratio == 1.0
