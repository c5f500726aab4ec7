# Where the set-up keeps what it builds, shared by setup_env.sh, env.sh and prune.sh (sourced, not run).
# The catkin workspace lives outside the clone: a workspace inside it would link back to the repository root
# and make rosrun's `find -L` loop. One workspace per clone path, one venv per requirements hash.
# Run through sudo (root with SUDO_USER set), the build cache is the invoking user's, never root's files in
# their home: setup_env.sh builds it as that user, and root only reads it.
IDP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IDP_HOME="$HOME"
IDP_SUDO_USER=""
if [ "$(id -u)" -eq 0 ] && [ -n "${SUDO_USER:-}" ] && [ "${SUDO_USER}" != root ]; then
  IDP_SUDO_USER="$SUDO_USER"
  IDP_HOME="$(getent passwd "$SUDO_USER" | cut -d: -f6)"
  if [ -z "$IDP_HOME" ] || [ ! -d "$IDP_HOME" ]; then IDP_SUDO_USER=""; IDP_HOME="$HOME"; fi  # no home: root's cache
fi
if [ -n "${INTRADP_CACHE:-}" ]; then
  IDP_CACHE="$INTRADP_CACHE"
elif [ -n "$IDP_SUDO_USER" ]; then
  IDP_CACHE="$IDP_HOME/.cache/intradp_ros"
else
  IDP_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/intradp_ros"
fi
IDP_WS="${INTRADP_WS:-$IDP_CACHE/ws-$(printf '%s' "$IDP_ROOT" | sha256sum | cut -c1-12)}"

# The venv of the current requirements (requirements, lock and interpreter version).
idp_req_hash() {
  (cat "$IDP_ROOT/requirements.txt" "$IDP_ROOT/constraints.txt"; /usr/bin/python3 --version) | sha256sum | cut -c1-16
}
