# The test machines' root filesystem: one Debian bookworm tree built with
# debootstrap into $COUNTER_CACHE/rootfs, shared by every machine through
# overlayfs. Sourced by scripts/cluster.
# shellcheck shell=bash

: "${DEBIAN_MIRROR:=http://deb.debian.org/debian}"
ROOTFS_SUITE=bookworm
# What a real host of docs/deploy.md has before the deploy: systemd, an SSH
# server, Python for Ansible (python3-apt for its apt module), and the Debian
# packages the deploy would otherwise install (the machines have no route to
# a mirror, so the deploy finds them present).
ROOTFS_PACKAGES=(systemd systemd-sysv dbus iproute2 openssh-server python3 python3-apt
  redis-server redis-sentinel redis-tools curl ca-certificates procps keepalived)

# rootfs: prints the cached Debian rootfs, building it first if needed. The
# cache is keyed by its package list (.counter-packages), so adding a package
# builds a new one.
rootfs() {
  local want dir
  want=$(printf '%s\n' "${ROOTFS_PACKAGES[@]}")
  for dir in "$COUNTER_CACHE/rootfs/$ROOTFS_SUITE"-*; do
    if [[ -f $dir/.counter-packages && $(cat "$dir/.counter-packages") == "$want" ]]; then
      echo "$dir"
      return
    fi
  done
  need_cmd debootstrap "run scripts/install (Debian package debootstrap)"
  dir=$COUNTER_CACHE/rootfs/$ROOTFS_SUITE-$(date +%Y%m%d)
  [[ -e $dir ]] && dir=$dir-$(date +%H%M%S)
  log "building the machines' rootfs $dir from $DEBIAN_MIRROR (once; a few minutes)"
  mkdir -p "$COUNTER_CACHE/rootfs"
  rm -rf "$dir.tmp"
  local packages
  packages=$(IFS=,; echo "${ROOTFS_PACKAGES[*]}")
  if ! debootstrap --variant=minbase --include="$packages" "$ROOTFS_SUITE" "$dir.tmp" \
    "$DEBIAN_MIRROR" >"$dir.log" 2>&1; then
    tail -n 20 "$dir.log" >&2
    die "debootstrap failed (log: $dir.log); set DEBIAN_MIRROR to a reachable mirror"
  fi
  # Debian's own redis-server and redis-sentinel (port 6379/26379) would run
  # beside Counter's instances in every machine; the machines do not need
  # them. The deploy masks them too, as on a real host.
  chroot "$dir.tmp" systemctl mask -q redis-server.service redis-sentinel.service \
    apt-daily.timer apt-daily-upgrade.timer
  # Every machine gets its own host keys at first boot (machine_files), not
  # copies of these.
  rm -f "$dir.tmp"/etc/ssh/ssh_host_*
  # No DNS on the cluster network: names resolve from /etc/hosts.
  printf '' >"$dir.tmp/etc/resolv.conf"
  echo "$want" >"$dir.tmp/.counter-packages"
  mv "$dir.tmp" "$dir"
  log "rootfs ready: $dir"
  echo "$dir"
}
