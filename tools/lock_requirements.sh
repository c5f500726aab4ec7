#!/usr/bin/env bash
# Regenerates constraints.txt (every package of the environment, transitive ones included) from requirements.txt
# in a throw-away venv made from Debian's python3, so the lock never carries what a developer installed by hand.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tmp=$(mktemp -d /tmp/intradp-lock.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 -m venv --system-site-packages "$tmp/venv"
"$tmp/venv/bin/pip" install -q --disable-pip-version-check -r requirements.txt
{
  echo "# Lock file: every Python package of the environment, transitive ones included, at the version CI tested."
  echo "# Installed as constraints (pip install -r requirements.txt -c constraints.txt) and part of the venv's cache key."
  echo "# Regenerate after changing requirements.txt: make lock"
  "$tmp/venv/bin/pip" freeze --exclude-editable --local
} > constraints.txt
echo "[lock] constraints.txt: $(grep -vc '^#' constraints.txt) packages"
