"""Where the project caches what it computed (profiles, plan tables and books, sample data): one root for all.

$INTRADP_CACHE when set, else ~/.cache/intradp_ros. Each kind of file gets its own subfolder under this root
(`cache_dir("sample_data")`); profiles and plan tables live at the root itself for compatibility with existing
caches.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "INTRADP_CACHE"


def default_cache_dir(sub: str = "") -> Path:
    """$INTRADP_CACHE (else ~/.cache/intradp_ros), or its subfolder `sub`."""
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "intradp_ros")
    return root / sub if sub else root
