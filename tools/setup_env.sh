#!/usr/bin/env bash
# Installs what intradp_ros needs on a Debian 12 machine, skipping what is already there:
#   1. Debian's ROS 1 (ros_comm 1.15, Noetic series) packages and network tools (apt),
#   2. a virtual environment .venv made from Debian's python3 with the pinned requirements
#      (kept in a cache outside the clone, keyed by the requirements' hash, and linked as .venv),
#   3. a catkin workspace (outside the clone, see tools/paths.sh) with this repository as its only package.
# Idempotent; prints what it does; fails with a clear message, not a stack trace.
# Run through sudo, only step 1 runs as root: steps 2-3 run as the invoking user, so no root-owned files end up in
# their home. Checks free disk before the large download. `make prune` removes venvs and workspaces no clone uses.
set -euo pipefail

# shellcheck source=tools/paths.sh
source "$(dirname "${BASH_SOURCE[0]}")/paths.sh"
ROOT="$IDP_ROOT"
cd "$ROOT"

say()  { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
fail() { printf '\033[31m[setup] error:\033[0m %s\n' "$*" >&2; exit 1; }

APT_PACKAGES=(
  python3-rospy python3-roslaunch python3-rosmaster rosout python3-rostest python3-rosbag
  python3-rosgraph-msgs python3-rostopic python3-rosnode python3-rosservice python3-rosparam python3-rosmsg
  catkin ros-environment ros-message-generation ros-message-runtime
  ros-std-msgs libstd-msgs-dev python3-std-msgs python3-genpy python3-genmsg
  rosbash rospack-tools librostest-dev
  ros-sensor-msgs libsensor-msgs-dev python3-sensor-msgs
  python3-diagnostic-updater python3-diagnostic-msgs ros-diagnostic-msgs
  python3-venv iproute2 iperf3 procps make gcc g++
)

# ---- 1. Debian packages --------------------------------------------------------------------------
[ -r /etc/debian_version ] || fail "this set-up needs Debian 12 (bookworm); /etc/debian_version is missing."
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  say "Debian ROS packages: all ${#APT_PACKAGES[@]} present"
else
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
      fail "missing Debian packages (${missing[*]}) and not root: run 'sudo make setup' once, or install them with apt-get."
    fi
  fi
  say "installing ${#missing[@]} Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq || fail "apt-get update failed (is a Debian mirror reachable?)"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || fail "apt-get install failed for: ${missing[*]}"
fi

# Through sudo: the rest as the invoking user (their cache, their files), unless INTRADP_CACHE names a place.
if [ -n "$IDP_SUDO_USER" ] && [ -z "${INTRADP_CACHE:-}" ]; then
  say "run through sudo: Debian packages done as root; the venv and workspace are built as $IDP_SUDO_USER in $IDP_CACHE"
  exec sudo -u "$IDP_SUDO_USER" -H env PATH="$PATH" ${INTRADP_WS:+INTRADP_WS="$INTRADP_WS"} \
    ${INTRADP_MIN_FREE_GB:+INTRADP_MIN_FREE_GB="$INTRADP_MIN_FREE_GB"} bash "$ROOT/tools/setup_env.sh"
fi

# ---- 2. Python virtual environment ---------------------------------------------------------------
DEBIAN_PY=/usr/bin/python3
[ -x "$DEBIAN_PY" ] || fail "$DEBIAN_PY not found: the ROS Python modules live in Debian's interpreter."
REQ_HASH=$(idp_req_hash)
CACHE_DIR="$IDP_CACHE"
VENV_DIR="$CACHE_DIR/venv-$REQ_HASH"
if [ -f "$VENV_DIR/.intradp-complete" ]; then
  say "virtual environment: cached at $VENV_DIR"
else
  # torch with its CUDA libraries is ~5.8 GB installed, plus pip's download cache: check before downloading.
  need_gb="${INTRADP_MIN_FREE_GB:-8}"
  mkdir -p "$CACHE_DIR"
  free_kb=$(df -Pk "$CACHE_DIR" | awk 'NR==2 {print $4}')
  if [ "${free_kb:-0}" -lt $((need_gb * 1024 * 1024)) ]; then
    fail "only $((free_kb / 1024 / 1024)) GB free in $CACHE_DIR; the virtual environment needs about $need_gb GB. Free space (\`make prune\` removes venvs and workspaces no clone uses), set INTRADP_CACHE to a larger disk, or INTRADP_MIN_FREE_GB to override."
  fi
  say "creating virtual environment $VENV_DIR (torch is large: about a minute; $((free_kb / 1024 / 1024)) GB free)"
  rm -rf "$VENV_DIR"
  mkdir -p "$CACHE_DIR"
  "$DEBIAN_PY" -m venv --system-site-packages "$VENV_DIR" || fail "could not create a venv with $DEBIAN_PY"
  # pip's own exit status decides (a pipe would hide it); pip's location warnings are filtered from its log only.
  pip_log="$CACHE_DIR/pip-$REQ_HASH.log"
  set +e
  "$VENV_DIR/bin/pip" install --disable-pip-version-check --progress-bar on \
      -r requirements.txt -c constraints.txt 2>&1 | tee "$pip_log" | grep -v -E "^WARNING: Location .* is ignored"
  pip_status=${PIPESTATUS[0]}
  set -e
  [ "$pip_status" -eq 0 ] || fail "pip could not install the pinned requirements (exit $pip_status; log: $pip_log)"
  # Every pinned package must import (a wheel that installs but does not load is caught here, not in a test).
  "$VENV_DIR/bin/python" tools/check_imports.py requirements.txt \
    || fail "the pinned requirements installed into $VENV_DIR but do not all import (see above)"
  touch "$VENV_DIR/.intradp-complete"
fi
if [ -L .venv ] || [ ! -e .venv ]; then
  ln -sfn "$VENV_DIR" .venv
elif [ ! -x .venv/bin/python ]; then
  fail ".venv exists but is not a virtual environment; remove it and run again."
fi

# ---- 3. catkin workspace -------------------------------------------------------------------------
WS="$IDP_WS"
mkdir -p "$WS/src"
ln -sfn "$ROOT" "$WS/src/intradp_ros"
# Rebuild only when what catkin generates from changes (messages, services, CMake, scripts list).
BUILD_HASH=$( (cat CMakeLists.txt package.xml setup.py; ls scripts test/integration 2>/dev/null; cat msg/* srv/*; readlink -f .venv) | sha256sum | cut -c1-16)
if [ -f "$WS/.intradp-build" ] && [ "$(cat "$WS/.intradp-build")" = "$BUILD_HASH" ] && [ -f "$WS/devel/setup.bash" ]; then
  say "catkin workspace: up to date ($WS)"
else
  say "building catkin workspace $WS"
  rm -f "$WS/.intradp-build"
  log="$WS/catkin_make.log"
  if ! (cd "$WS" && catkin_make --force-cmake -DPYTHON_EXECUTABLE="$ROOT/.venv/bin/python" -DCATKIN_ENABLE_TESTING=ON >"$log" 2>&1); then
    tail -n 30 "$log" >&2
    rm -rf "$WS/build"   # a failed configure poisons the cache
    fail "catkin_make failed; the full log is $log"
  fi
  echo "$BUILD_HASH" > "$WS/.intradp-build"
fi
say "ready: source tools/env.sh (or use make) to get the workspace and the venv"
