# Source this to work in the project: the catkin workspace's environment plus the venv.
#   source tools/env.sh
_idp_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -f "$_idp_root/.build/ws/devel/setup.bash" ]; then
  echo "intradp_ros: the workspace is not built yet; run 'make setup' first." >&2
  return 1 2>/dev/null || exit 1
fi
# shellcheck disable=SC1091
source "$_idp_root/.build/ws/devel/setup.bash"
# shellcheck disable=SC1091
source "$_idp_root/.venv/bin/activate"
export PYTHONDONTWRITEBYTECODE=1
unset _idp_root
