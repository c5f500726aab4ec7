# Source this to work in the project: the catkin workspace's environment plus the venv.
#   source tools/env.sh
# shellcheck source=tools/paths.sh
source "$(dirname "${BASH_SOURCE[0]}")/paths.sh"
if [ ! -f "$IDP_WS/devel/setup.bash" ]; then
  echo "intradp_ros: the workspace is not built yet; run 'make setup' first." >&2
  return 1 2>/dev/null || exit 1
fi
# shellcheck disable=SC1091
source "$IDP_WS/devel/setup.bash"
# shellcheck disable=SC1091
source "$IDP_ROOT/.venv/bin/activate"
export PYTHONDONTWRITEBYTECODE=1
