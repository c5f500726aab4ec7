#!/usr/bin/env bash
# Verify the README's two commands on a minimal Debian 12 root file system made with debootstrap (as root):
#   sudo bash tools/verify_fresh_debian.sh [ROOTFS] [COMMANDS...]
# 1. debootstrap --variant=minbase bookworm into ROOTFS (default /var/tmp/intradp-deb12; reused when complete),
# 2. apt-get install make (a fresh Debian has no make; the README's commands start with it),
# 3. a clean `git clone` of this repository's HEAD at /src/intradp_ros inside it (committed work only),
# 4. each command (default: "make demo" "make test") in a chroot with /proc, /sys, /dev, /dev/pts, /run and
#    /sys/fs/cgroup mounted (the demo and rostests build network namespaces and cgroups), as root, a clean env.
# Writes ROOTFS/verify-<UTC time>.log with every command's output, exit status and duration, and prints a summary.
# Needs: root, debootstrap and git on the host (apt-get install debootstrap git), ~15 GB free (torch), network
# access to a Debian mirror (INTRADP_DEBIAN_MIRROR, default deb.debian.org) and to PyPI. Not part of CI.
# Behind a TLS-intercepting proxy pip needs that proxy's CA: when the host sets PIP_CERT (or REQUESTS_CA_BUNDLE),
# that file is copied into the root file system and PIP_CERT points to it there (nothing else of the host leaks in).
set -euo pipefail
say()  { printf '\033[1m[verify]\033[0m %s\n' "$*"; }
fail() { printf '\033[31m[verify] error:\033[0m %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "run as root (debootstrap and chroot need it)"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOTFS="${1:-/var/tmp/intradp-deb12}"
shift || true
COMMANDS=("$@")
[ ${#COMMANDS[@]} -gt 0 ] || COMMANDS=("make demo" "make test")
MIRROR="${INTRADP_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
command -v debootstrap >/dev/null || fail "debootstrap is missing: apt-get install debootstrap"
command -v git >/dev/null || fail "git is missing: apt-get install git"
LOG="$ROOTFS/verify-$(date -u +%Y%m%dT%H%M%SZ).log"

if [ ! -f "$ROOTFS/.intradp-debootstrap-done" ]; then
  say "debootstrap bookworm (minbase) into $ROOTFS from $MIRROR"
  mkdir -p "$ROOTFS"
  t0=$SECONDS
  debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" || fail "debootstrap failed (see $ROOTFS/debootstrap/debootstrap.log)"
  touch "$ROOTFS/.intradp-debootstrap-done"
  say "debootstrap done in $((SECONDS - t0)) s"
fi

# what the Debian installer writes and debootstrap does not: /etc/hosts (roslaunch resolves "localhost") and a
# hostname, as on an installed machine (with Debian's 127.0.1.1 entry, which the bridge flags for two machines)
[ -s "$ROOTFS/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n' "$(hostname)" >"$ROOTFS/etc/hosts"
[ -s "$ROOTFS/etc/hostname" ] || hostname >"$ROOTFS/etc/hostname"

mounts=()
cleanup() {
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
mount_in() {  # mount_in TYPE-or-bind SOURCE TARGET
  mkdir -p "$ROOTFS$3"
  if [ "$1" = bind ]; then mount --rbind "$2" "$ROOTFS$3" && mount --make-rslave "$ROOTFS$3"; else mount -t "$1" "$2" "$ROOTFS$3"; fi
  mounts+=("$ROOTFS$3")
}
# the root file system as a mount point of its own: `ip netns` runs `mount --make-rslave /`, which needs "/" to be one
mount --bind "$ROOTFS" "$ROOTFS"
mounts+=("$ROOTFS")
mount_in proc proc /proc
mount_in bind /sys /sys
mount_in bind /dev /dev
mount_in tmpfs tmpfs /run
cp -L /etc/resolv.conf "$ROOTFS/etc/resolv.conf"

extra_env=()
ca="${PIP_CERT:-${REQUESTS_CA_BUNDLE:-}}"
if [ -n "$ca" ] && [ -r "$ca" ]; then
  cp -L "$ca" "$ROOTFS/etc/intradp-pip-ca.pem"
  extra_env+=(PIP_CERT=/etc/intradp-pip-ca.pem)
  say "pip in the chroot trusts the host's PIP_CERT CA bundle (copied to /etc/intradp-pip-ca.pem)"
fi
in_root() { chroot "$ROOTFS" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb "${extra_env[@]}" \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin bash -c "$1"; }

{
  echo "# intradp_ros on a debootstrapped Debian 12 ($(cat "$ROOTFS/etc/debian_version")), $(date -u)"
  echo "# repository $(git -C "$REPO" rev-parse HEAD) ($(git -C "$REPO" rev-parse --abbrev-ref HEAD))"
} | tee "$LOG"
say "installing make (not in a fresh Debian)"
in_root "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends make" >>"$LOG" 2>&1 \
  || fail "apt-get install make failed in the chroot (log $LOG)"
rm -rf "$ROOTFS/src/intradp_ros"
mkdir -p "$ROOTFS/src"
git clone -q "$REPO" "$ROOTFS/src/intradp_ros"
say "clean clone of $(git -C "$ROOTFS/src/intradp_ros" rev-parse --short HEAD) at /src/intradp_ros"

status=0
for cmd in "${COMMANDS[@]}"; do
  say "running '$cmd' in the chroot (log $LOG)"
  t0=$SECONDS
  set +e
  in_root "cd /src/intradp_ros && $cmd" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  set -e
  line="'$cmd': exit $rc after $((SECONDS - t0)) s"
  echo "# $line" >>"$LOG"
  say "$line"
  [ "$rc" -eq 0 ] || status=1
done
say "$( [ $status -eq 0 ] && echo "both commands passed" || echo "a command failed" ); log: $LOG"
exit $status
