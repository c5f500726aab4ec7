#!/usr/bin/env bash
# `make prune`: remove the virtual environments and catkin workspaces in the set-up cache that no clone uses any
# more (each venv is ~5.8 GB), keeping this clone's and those of every other clone that still exists.
#   a workspace ws-<hash> is kept while the clone its src/intradp_ros link points to exists;
#   a venv venv-<hash> is kept while it is this clone's current one or a kept clone's .venv points to it.
# DRY=1 lists what would go. ALL=1 also removes the workspaces and venvs of other existing clones.
set -euo pipefail
# shellcheck source=tools/paths.sh
source "$(dirname "${BASH_SOURCE[0]}")/paths.sh"
say() { printf '\033[1m[prune]\033[0m %s\n' "$*"; }
DRY="${DRY:-0}"
ALL="${ALL:-0}"
[ -d "$IDP_CACHE" ] || { say "nothing to prune: $IDP_CACHE does not exist"; exit 0; }

declare -A keep_venv=()
keep_venv["$IDP_CACHE/venv-$(idp_req_hash)"]=1
[ -L "$IDP_ROOT/.venv" ] && keep_venv["$(readlink -f "$IDP_ROOT/.venv")"]=1
remove=()
for ws in "$IDP_CACHE"/ws-*; do
  [ -d "$ws" ] || continue
  [ "$ws" = "$IDP_WS" ] && continue
  clone="$(readlink "$ws/src/intradp_ros" 2>/dev/null || true)"
  if [ "$ALL" != 1 ] && [ -n "$clone" ] && [ -d "$clone" ]; then
    [ -L "$clone/.venv" ] && keep_venv["$(readlink -f "$clone/.venv")"]=1
    continue
  fi
  remove+=("$ws")
done
for venv in "$IDP_CACHE"/venv-*; do
  [ -d "$venv" ] || continue
  [ -n "${keep_venv[$venv]:-}" ] && continue
  remove+=("$venv")
  log="$IDP_CACHE/pip-${venv##*/venv-}.log"
  [ -f "$log" ] && remove+=("$log")
done
if [ ${#remove[@]} -eq 0 ]; then
  say "nothing to prune in $IDP_CACHE (kept: this clone's workspace and venv, and those of other existing clones)"
  exit 0
fi
freed=$(du -scb "${remove[@]}" 2>/dev/null | tail -1 | cut -f1)
for p in "${remove[@]}"; do
  if [ "$DRY" = 1 ]; then say "would remove $p"; else say "removing $p"; rm -rf -- "$p"; fi
done
say "$([ "$DRY" = 1 ] && echo would free || echo freed) $((freed / 1024 / 1024)) MB in $IDP_CACHE"
