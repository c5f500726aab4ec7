"""Imports every package pinned in a requirements file; exits non-zero naming the ones that fail.

Used by tools/setup_env.sh after pip, so an environment whose wheels installed but do not load is never
marked complete. Distribution names map to import names through the distributions' own top-level lists.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import re
import sys

# Distributions whose import name is neither their name nor listed in their metadata.
IMPORT_NAMES = {"pillow": "PIL", "scikit-image": "skimage", "pytest": "pytest", "ruff": None}


def requirement_names(path: str) -> list[str]:
    names = []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            line = line.split("#", 1)[0].strip()
            if line:
                names.append(re.split(r"[=<>!~\[; ]", line, maxsplit=1)[0].lower())
    return names


def import_name(dist: str) -> str | None:
    if dist in IMPORT_NAMES:
        return IMPORT_NAMES[dist]
    try:
        top = (md.distribution(dist).read_text("top_level.txt") or "").split()
    except md.PackageNotFoundError:
        top = []
    return top[0] if top else dist.replace("-", "_")


def main(path: str) -> int:
    bad = []
    for dist in requirement_names(path):
        name = import_name(dist)
        if name is None:  # a command-line tool without a Python module worth importing
            continue
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - report every failure, whatever its kind
            bad.append(f"{dist} (import {name}): {type(e).__name__}: {e}")
    for line in bad:
        print(f"[setup] cannot import {line}", file=sys.stderr)
    if not bad:
        print(f"[setup] all {len(requirement_names(path))} pinned packages import")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "requirements.txt"))
