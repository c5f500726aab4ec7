"""Which processes own the TCP connections inside a testbed namespace (`ss -tnpi`), and how much each carried.

Used to check that tile data flows node to node (peer-to-peer TCPROS), not through the bridge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from intradp_ros.eval.testbed import Testbed, TestbedError

_PID_RE = re.compile(r"pid=(\d+)")
_COUNTER_RE = re.compile(r"\b(bytes_acked|bytes_received):(\d+)")


@dataclass(frozen=True)
class TcpConn:
    """One established TCP connection as seen from its local end."""

    local: tuple[str, int]
    peer: tuple[str, int]
    pids: tuple[int, ...]
    bytes_acked: int = 0  # payload bytes this end sent that the peer acknowledged
    bytes_received: int = 0  # payload bytes this end received


def _endpoint(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def parse_ss(text: str) -> list[TcpConn]:
    """Parse `ss -tnpiH state established` output (a connection line, then an indented info line)."""
    conns: list[TcpConn] = []
    current = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if line[0].isspace():  # info line of the previous connection
            if current is not None:
                counters = {k: int(v) for k, v in _COUNTER_RE.findall(line)}
                current = TcpConn(
                    current.local,
                    current.peer,
                    current.pids,
                    counters.get("bytes_acked", 0),
                    counters.get("bytes_received", 0),
                )
                conns[-1] = current
            continue
        parts = line.split()
        if len(parts) < 4:
            raise ValueError(f"unexpected ss line: {line!r}")
        # with a state filter ss omits the State column: recv-q send-q local peer [users]
        if not parts[0].isdigit():
            parts = parts[1:]
        current = TcpConn(
            _endpoint(parts[2]), _endpoint(parts[3]), tuple(int(p) for p in _PID_RE.findall(" ".join(parts[4:])))
        )
        conns.append(current)
    return conns


def tcp_connections(tb: Testbed, side: str) -> list[TcpConn]:
    """Established TCP connections in `side`'s namespace with their owning pids and byte counters."""
    res = tb.run(side, ["ss", "-tnpiH", "state", "established"], timeout=10)
    if res.returncode != 0:
        raise TestbedError(f"ss failed in {side}: {res.stderr.strip()}")
    return parse_ss(res.stdout)
