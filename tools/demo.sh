#!/usr/bin/env bash
# The main demo (make demo): the Intra-DP server and the KAPAO client, each with its own roscore, in two network
# namespaces joined by the master bridge and a tbf-shaped link that follows the outdoor bandwidth trace (time-dilated),
# the robot side CPU-throttled; the client replays the bundled camera bag and prints a line per frame and a summary.
# Without root it runs on loopback with two masters (no shaping, no throttle). Extra arguments go to
# scripts/intradp_demo (e.g. --mode dsccs, --frames 10, --rate 5, --trace indoor, --model kapao_m6).
# The previous demo (TensorTile echo over the shaped link) is still there: scripts/tile_echo_demo.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export ROS_HOME="${ROS_HOME:-$(mktemp -d /tmp/intradp-demo-ros.XXXXXX)}"
export ROS_LOG_DIR="$ROS_HOME/log"
if [ "$(id -u)" -ne 0 ]; then
  echo "[demo] not root: running on loopback with two masters (sudo -E make demo for namespaces, shaping, throttle)"
fi
echo "[demo] Intra-DP server + KAPAO client over two bridged masters (ROS logs in $ROS_HOME)"
exec python scripts/intradp_demo "$@"
