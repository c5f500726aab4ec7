#!/usr/bin/env bash
# Benchmarks (make bench). Each prints its figures and ratios; none of them is a pass/fail test.
# Later benchmarks append a section below. Needs root (the testbed builds network namespaces).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ "$(id -u)" -ne 0 ]; then
  echo "[bench] the benchmarks build network namespaces and tc qdiscs: run them as root (sudo -E make bench)" >&2
  exit 1
fi
export ROS_HOME="${ROS_HOME:-$(mktemp -d /tmp/intradp-bench-ros.XXXXXX)}"
export ROS_LOG_DIR="$ROS_HOME/log"
status=0

echo "[bench] transport: TensorTile goodput/latency vs iperf3 over the bridged 90 Mbit/s testbed link"
python scripts/bench_transport || status=1

exit $status
