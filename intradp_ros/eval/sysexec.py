"""Running the system tools the testbed needs (ip, tc) with errors that say what failed and why."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence


class TestbedError(RuntimeError):
    """The testbed could not be set up or used; the message says which step failed and why."""

    __test__ = False  # not a pytest test class


def require_root(what: str = "the testbed") -> None:
    """Raise TestbedError unless running as root (namespaces, tc and cgroups need it)."""
    if os.geteuid() != 0:
        raise TestbedError(
            f"{what} needs root (network namespaces, tc qdiscs, cgroups); "
            f"run as root, e.g. 'sudo -E', current uid is {os.geteuid()}"
        )


def require_tools(*names: str) -> None:
    """Raise TestbedError naming every missing executable."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        raise TestbedError(f"missing tools: {', '.join(missing)} (install iproute2 / iperf3: make setup)")


def run_cmd(argv: Sequence[str], what: str, check: bool = True, timeout: float = 10.0) -> subprocess.CompletedProcess:
    """Run a short system command; on failure raise TestbedError with `what` and the tool's stderr."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TestbedError(f"{what}: {' '.join(argv)} failed: {exc}") from None
    if check and proc.returncode != 0:
        raise TestbedError(f"{what}: '{' '.join(argv)}' exited {proc.returncode}: {proc.stderr.strip()}")
    return proc
