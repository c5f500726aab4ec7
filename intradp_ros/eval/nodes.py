"""Starting the project's nodes inside a testbed: script paths, the master bridge, JSON-line readers."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from intradp_ros.eval.testbed import Testbed, TestbedError

SOURCE_SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
BRIDGE_GLOBS = ("/intradp/*",)
TOPIC_GLOBS = BRIDGE_GLOBS + ("/diagnostics",)  # both sides' node health visible on either master


def script_argv(name: str, *args: str) -> list[str]:
    """argv that runs one of the package's scripts with the same pid (no wrapper shell).

    The source tree's scripts/ is used when present (development, tests); otherwise rosrun finds the installed one.
    """
    path = SOURCE_SCRIPTS / name
    if path.is_file():
        return [str(path), *args]
    if shutil.which("rosrun") is None:
        raise TestbedError(f"script {name} not found in {SOURCE_SCRIPTS} and rosrun is not available")
    return ["rosrun", "intradp_ros", name, *args]


def start_bridge(
    tb: Testbed,
    side: str = "robot",
    topics: Sequence[str] = TOPIC_GLOBS,
    services: Sequence[str] = BRIDGE_GLOBS,
    log: IO | None = None,
) -> subprocess.Popen:
    """Run one master_bridge on `side` with the other side's master as peer (it syncs both directions)."""
    peer = tb.server if side == "robot" else tb.robot
    argv = script_argv(
        "master_bridge", "--peer", peer.master_uri, "--topics", ",".join(topics), "--services", ",".join(services)
    )
    return tb.spawn(side, argv, stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def read_json_lines(
    proc: subprocess.Popen, timeout: float, stop_kinds: Sequence[str] = ("done", "error")
) -> Iterator[dict]:
    """Yield JSON objects a node prints on stdout (text mode), until a stop kind, EOF, or `timeout` seconds.

    Lines that are not JSON objects (stray prints) are skipped. Raises TestbedError on timeout. A reader
    thread does the blocking reads, so the deadline holds even when the node goes quiet.
    """
    stream = proc.stdout
    if stream is None:
        raise ValueError("the process needs stdout=subprocess.PIPE (text mode)")
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        try:
            for line in stream:
                lines.put(line)
        except (OSError, ValueError):
            pass
        lines.put(None)

    threading.Thread(target=pump, name="json-lines", daemon=True).start()
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TestbedError(f"no result from {' '.join(map(str, proc.args[-3:]))} within {timeout:g} s")
        try:
            line = lines.get(timeout=min(left, 1.0))
        except queue.Empty:
            continue
        if line is None:
            return
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        yield obj
        if obj.get("kind") in stop_kinds:
            return
