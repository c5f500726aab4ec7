# Where the set-up keeps what it builds, shared by setup_env.sh and env.sh (sourced, not run).
# The catkin workspace lives outside the clone: a workspace inside it would link back to the repository root
# and make rosrun's `find -L` loop. One workspace per clone path, one venv per requirements hash.
IDP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IDP_CACHE="${INTRADP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/intradp_ros}"
IDP_WS="${INTRADP_WS:-$IDP_CACHE/ws-$(printf '%s' "$IDP_ROOT" | sha256sum | cut -c1-12)}"
