#!/usr/bin/env bash
# The main demo (make demo): KAPAO-L from the bundled camera bag's compressed topic (1280x960 JPEG) on the faithful
# testbed (two network namespaces, a tbf link following the time-dilated outdoor trace, the robot in a cgroup CPU
# quota), run once per system: Intra-DP (camera JPEG passthrough allowed), server-only sending raw pixels,
# server-only sending the camera's JPEG, and device-only; a side-by-side table, a PNG plot and the health table of
# the four nodes. Needs root. Extra arguments go to scripts/intradp_demo (e.g. --frames 8, --trace indoor,
# --input-size 768,1024, --budget 900, --systems intradp,server_only,device_only).
# The previous demos are still there: the single-system launch (roslaunch intradp_ros demo.launch side:=...) and
# scripts/tile_echo_demo.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export ROS_HOME="${ROS_HOME:-$(mktemp -d /tmp/intradp-demo-ros.XXXXXX)}"
export ROS_LOG_DIR="$ROS_HOME/log"
if [ "$(id -u)" -ne 0 ]; then
  echo "[demo] the demo builds network namespaces, a shaped link and a cgroup CPU quota: run it as root (sudo -E make demo)" >&2
  exit 1
fi
echo "[demo] KAPAO-L from the compressed camera: Intra-DP vs server-only (raw pixels, camera JPEG) vs device-only (ROS logs in $ROS_HOME)"
exec python scripts/intradp_demo "$@"
