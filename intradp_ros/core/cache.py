"""Where the project caches what it computed (profiles, plan tables and books, sample data): one root for all.

$INTRADP_CACHE when set, else ~/.cache/intradp_ros. Each kind of file gets its own subfolder under this root
(`cache_dir("sample_data")`); profiles and plan tables live at the root itself for compatibility with existing
caches.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

CACHE_ENV = "INTRADP_CACHE"


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `path` through a temporary file renamed over it, making the folder first: a reader (in this
    or another process) sees the old file or the whole new one, never half of one; each writer thread has its own
    temporary name."""
    target = os.fspath(path)
    os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    tmp = f"{target}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, target)


def default_cache_dir(sub: str = "") -> Path:
    """$INTRADP_CACHE (else ~/.cache/intradp_ros), or its subfolder `sub`.

    A root process started through sudo with the user's HOME kept (sudo -E) uses root's own home, so no
    root-owned files end up in the user's."""
    env = os.environ.get(CACHE_ENV)
    if env:
        root = Path(env)
    else:
        home = Path.home()
        if hasattr(os, "geteuid") and os.geteuid() == 0 and os.environ.get("SUDO_USER", "root") != "root":
            import pwd

            home = Path(pwd.getpwuid(0).pw_dir)
        root = home / ".cache" / "intradp_ros"
    return root / sub if sub else root
