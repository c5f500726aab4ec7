#!/usr/bin/env bash
# Benchmarks (make bench). Each prints its figures and ratios; none of them is a pass/fail test.
# Later benchmarks append a section below. Needs root (the testbed builds network namespaces).
set -uo pipefail
QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    *) echo "[bench] unknown argument $arg (only --quick)" >&2; exit 2 ;;
  esac
done
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

# ---- system benchmark: every system on the same frames, indoor and outdoor traces (docs/evaluation.md) ----
# KAPAO-L (camera bag) and SCONet (point-cloud bag) through the real server/client nodes on the testbed; the client
# is CPU-throttled (cgroup quota 0.1 CPU, about 20x slower than the 2-thread CPU server) and the time dilation
# k = 20 divides link rates (and bucket grid) by 20 and plays the traces 20x slower. --quick: 3 frames per run.
FRAMES=10; [ "$QUICK" = 1 ] && FRAMES=3
OUT="${BENCH_OUT:-$ROOT/results/bench}"
for spec in "kapao_l6 --input-size 256,320" "sconet --grid-xzy 128,32,128"; do
  set -- $spec
  echo "[bench] system: $1 ($3), all five systems, indoor + outdoor, $FRAMES frames each -> $OUT/system_$1"
  python scripts/evaluate --model "$@" --frames "$FRAMES" --warmup 1 --robot-cpu 0.1 --dilation 20 \
    --traces indoor,outdoor --out "$OUT/system_$1" || status=1
done

exit $status
