#!/usr/bin/env bash
# The main demo (make demo): TensorTiles robot -> server -> robot over two roscores in network namespaces,
# joined by the master bridge and a tbf-shaped 90 Mbit/s link. Extra arguments go to scripts/tile_echo_demo
# (e.g. --trace config/traces/outdoor.txt, --rate 50, --rounds 2, --robot-cpu 0.25). Needs root.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ "$(id -u)" -ne 0 ]; then
  echo "[demo] the demo builds network namespaces and tc qdiscs: run it as root (sudo -E make demo)" >&2
  exit 1
fi
export ROS_HOME="${ROS_HOME:-$(mktemp -d /tmp/intradp-demo-ros.XXXXXX)}"
export ROS_LOG_DIR="$ROS_HOME/log"
echo "[demo] tile echo over the bridged, shaped testbed link (ROS logs in $ROS_HOME)"
exec python scripts/tile_echo_demo "$@"
