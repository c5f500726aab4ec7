#!/usr/bin/env bash
# Benchmarks (make bench). Each prints its figures and ratios; none of them is a pass/fail test.
#   --quick     fewer frames (3 instead of 10 per system and trace), same input sizes
#   --rate HZ   system benchmark frames arrive at a camera rate of HZ (undilated; published at HZ / k) instead of
#               in lockstep
#   --only X    run only one part: transport, engine (ROS-free offload benchmark) or system (testbed, root)
# Needs root for the transport and system parts (network namespaces, tc qdiscs, cgroups).
set -uo pipefail
QUICK=0
RATE=""
ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --rate) shift; RATE="${1:-}"; [ -n "$RATE" ] || { echo "[bench] --rate needs a value (Hz)" >&2; exit 2; } ;;
    --only) shift; ONLY="${1:-}"; case "$ONLY" in transport|engine|system) ;; *) echo "[bench] --only transport|engine|system" >&2; exit 2 ;; esac ;;
    *) echo "[bench] unknown argument $1 (--quick, --rate HZ, --only transport|engine|system)" >&2; exit 2 ;;
  esac
  shift
done
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }
if [ "$(id -u)" -ne 0 ] && [ "$ONLY" != "engine" ]; then
  echo "[bench] the benchmarks build network namespaces and tc qdiscs: run them as root (sudo -E make bench)," >&2
  echo "[bench] or only the ROS-free engine benchmark: make bench ARGS='--only engine'" >&2
  exit 1
fi
export ROS_HOME="${ROS_HOME:-$(mktemp -d /tmp/intradp-bench-ros.XXXXXX)}"
export ROS_LOG_DIR="$ROS_HOME/log"
status=0
FRAMES=10; [ "$QUICK" = 1 ] && FRAMES=3
OUT="${BENCH_OUT:-$ROOT/results/bench}"
mkdir -p "$OUT"

if want transport; then
  echo "[bench] transport: TensorTile goodput/latency vs iperf3 over the bridged 90 Mbit/s testbed link"
  python scripts/bench_transport || status=1
fi

# ---- engine-level offload benchmark: no ROS, no tc; the server half on CUDA where present (docs/evaluation.md) ----
# KAPAO-L 1280x960, VGG19 224, SCONet 256x32x256; in-process link throttled to the traces' rates (/ k without a GPU);
# robot half on this CPU slowed to 20x the reference GPU time; codec work charged x3 on the robot.
if want engine; then
  echo "[bench] engine: every system, three workloads at the seeds' sizes, $FRAMES frames each -> $OUT/engine.csv"
  python scripts/bench_offload --frames "$FRAMES" $([ "$QUICK" = 1 ] && echo --quick) --csv "$OUT/engine.csv" || status=1
fi

# ---- system benchmark: every system on the same frames through the real nodes on the testbed ----
# KAPAO-L (camera bag, the largest size from 1280x960 down whose device-only frame fits 60 s on the testbed), VGG19 224
# (camera bag, torchvision client) and SCONet 256x32x256 (point-cloud bag). Client cgroup quota 0.1 CPU; time
# dilation k per workload = measured CPU frame / the RTX 3080-class GPU frame it stands for (printed, in the tables).
if want system; then
  PACING=(); [ -n "$RATE" ] && PACING=(--rate "$RATE")
  for spec in "kapao_l6 --input-size auto --frame-budget 60" "torchvision:vgg19 --input-size 224,224" \
              "sconet --grid-xzy 256,32,256"; do
    set -- $spec
    name="${1//:/_}"
    echo "[bench] system: $spec, all five systems, indoor + outdoor, $FRAMES frames each -> $OUT/system_$name"
    python scripts/evaluate --model "$@" --frames "$FRAMES" --warmup 1 --robot-cpu 0.1 --dilation auto \
      --frame-timeout 900 --traces indoor,outdoor "${PACING[@]}" --out "$OUT/system_$name" || status=1
  done
fi

exit $status
