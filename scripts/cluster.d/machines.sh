# The test machines themselves: each a copy (overlayfs) of the cached rootfs
# booted with systemd as PID 1 under systemd-nspawn, in its own network
# namespace, with an SSH server whose host key this host knows and an
# authorized key of this host's: from then on the deploy reaches it exactly
# as it reaches a real host. Only making, breaking and removing machines
# reaches into them (nsenter); the deploy never does. Sourced by scripts/cluster.
# shellcheck shell=bash

# The cgroup v1 controllers Nomad's client manages (see docs/cluster.md).
NOMAD_CGROUPS=(cpu cpuset memory freezer)
SSH_DIR=$CLUSTER_STATE/ssh

machine_dir() { echo "$CLUSTER_STATE/machines/$1"; }

# machines: the machines that have state, in order (m1 m2 ...).
machines() {
  local d
  for d in "$CLUSTER_STATE"/machines/m*; do
    if [[ -d $d ]]; then basename "$d"; fi
  done | sort -V
}

# proc_start <pid>: start time of a process (tells it from a later PID reuse).
proc_start() {
  local stat fields
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  read -ra fields <<<"${stat##*) }"
  echo "${fields[19]}"
}

# nspawn_pid <machine>: PID of the machine's systemd-nspawn, if it runs.
nspawn_pid() {
  local file pid started
  file=$(machine_dir "$1")/nspawn.pid
  [[ -f $file ]] || return 1
  read -r pid started <"$file" || return 1
  [[ -n $pid && $(proc_start "$pid" 2>/dev/null) == "$started" ]] || return 1
  echo "$pid"
}

# leader_pid <machine>: PID of the machine's PID 1 (its systemd), seen from here.
leader_pid() {
  local pid child
  pid=$(nspawn_pid "$1") || return 1
  for child in $(pgrep -P "$pid"); do
    [[ $(cat "/proc/$child/comm" 2>/dev/null) == systemd ]] && echo "$child" && return
  done
  return 1
}

# in_machine <machine> <command...>: runs a command inside the machine, in all
# its namespaces, with a clean environment (faults and debugging only).
in_machine() {
  local m=$1 pid
  shift
  pid=$(leader_pid "$m") || die "machine $m is not running (scripts/cluster up)"
  nsenter --target "$pid" --all env -i HOME=/root TERM="${TERM:-dumb}" LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

# ssh_key: this cluster's operator key (made once per cluster).
ssh_key() {
  mkdir -p "$SSH_DIR"
  chmod 0700 "$SSH_DIR"
  [[ -s $SSH_DIR/id_ed25519 ]] ||
    ssh-keygen -q -t ed25519 -N '' -C "counter-cluster-operator" -f "$SSH_DIR/id_ed25519"
  touch "$SSH_DIR/known_hosts"
}

# machine_files <machine> <root>: what makes the copy of the rootfs this
# machine: its name, machine id, SSH host key (recorded in this host's
# known_hosts for the cluster) and the operator's authorized key.
machine_files() {
  local m=$1 root=$2 addr
  addr=$(machine_addr "$m")
  echo "$m" >"$root/etc/hostname"
  printf '127.0.0.1 localhost\n::1 localhost\n%s %s\n' "$addr" "$m" >"$root/etc/hosts"
  [[ -s $root/etc/machine-id ]] || tr -d '-' </proc/sys/kernel/random/uuid >"$root/etc/machine-id"
  if [[ ! -s $root/etc/ssh/ssh_host_ed25519_key ]]; then
    ssh-keygen -q -t ed25519 -N '' -C "root@$m" -f "$root/etc/ssh/ssh_host_ed25519_key"
  fi
  # Only the key made here: sshd offers no other, so the known_hosts line
  # below is the one every connection is checked against.
  printf 'HostKey /etc/ssh/ssh_host_ed25519_key\nPasswordAuthentication no\nPermitRootLogin prohibit-password\nUseDNS no\n' \
    >"$root/etc/ssh/sshd_config.d/counter.conf"
  local known
  known=$(grep -v "^$addr " "$SSH_DIR/known_hosts" || true)
  printf '%s\n%s %s\n' "$known" "$addr" "$(cut -d' ' -f1-2 "$root/etc/ssh/ssh_host_ed25519_key.pub")" |
    grep . >"$SSH_DIR/known_hosts"
  install -d -m 0700 "$root/root/.ssh"
  install -m 0600 "$SSH_DIR/id_ed25519.pub" "$root/root/.ssh/authorized_keys"
}

# machine_boot <machine> <rootfs>: overlay, network, systemd-nspawn --boot.
machine_boot() {
  local m=$1 lower=$2 dir root
  dir=$(machine_dir "$m")
  root=$dir/root
  if nspawn_pid "$m" >/dev/null; then
    log "$m: already running"
    return
  fi
  mkdir -p "$dir/upper" "$dir/work" "$root"
  mountpoint -q "$root" ||
    mount -t overlay "counter-$m" -o "lowerdir=$lower,upperdir=$dir/upper,workdir=$dir/work" "$root"
  machine_files "$m" "$root"
  machine_net_up "$m"
  # --register=no --keep-unit: this host's PID 1 is not systemd (no machined).
  # --resolv-conf=off: no DNS on the cluster network.
  # CAP_NET_ADMIN (in the machine's own network namespace only): keepalived
  # adds and removes the floating gateway address, as on a real host.
  setsid systemd-nspawn --boot --register=no --keep-unit --quiet \
    --machine="$m" --directory="$root" \
    --network-namespace-path="/run/netns/counter-$m" \
    --capability=CAP_NET_ADMIN \
    --resolv-conf=off --timezone=off --link-journal=no \
    </dev/null >"$dir/console.log" 2>&1 9>&- &
  local pid=$!
  echo "$pid $(proc_start "$pid")" >"$dir/nspawn.pid"
  log "$m: booting ($(machine_addr "$m"), console: $dir/console.log)"
}

# machine_state <machine>: its systemd's overall state (running, degraded,
# starting, ...); fails while its systemd does not answer yet.
machine_state() {
  local state
  state=$(in_machine "$1" systemctl is-system-running 2>/dev/null) || true
  [[ -n $state ]] && echo "$state"
}

machine_booted() { [[ $(machine_state "$1") == @(running|degraded) ]]; }
ssh_answers() {
  ssh -o BatchMode=yes -o ConnectTimeout=2 -o IdentitiesOnly=yes -i "$SSH_DIR/id_ed25519" \
    -o UserKnownHostsFile="$SSH_DIR/known_hosts" -o StrictHostKeyChecking=yes \
    "root@$(machine_addr "$1")" true
}

# machine_wait_booted <machine>: until its systemd finished starting up and
# its SSH server lets this host's key in.
machine_wait_booted() {
  local m=$1
  wait_for 60 "$m to start systemd" leader_pid "$m"
  if ! retry 90 machine_booted "$m"; then
    tail -n 20 "$(machine_dir "$m")/console.log" >&2
    die "$m: did not finish booting (state: $(machine_state "$m" || echo 'no answer'))"
  fi
  if [[ $(machine_state "$m") == degraded ]]; then
    warn "$m: booted, degraded: $(in_machine "$m" systemctl --failed --no-legend --plain | awk '{print $1}' | paste -sd' ')"
  fi
  wait_for 60 "$m's SSH server" ssh_answers "$m"
  log "$m: booted, SSH answers"
}

# machine_cgroups <machine>: gives the machine writable cgroup v1 controllers
# of its own. This host runs cgroups v1, and nspawn mounts the v1 controllers
# read-only into a machine (only name=systemd is writable), where the Nomad
# client cannot create its cgroups ("mkdir /sys/fs/cgroup/memory/nomad:
# read-only file system"). Each controller Nomad uses gets a subtree
# counter/<m>, bind-mounted over the controller inside the machine: Nomad sees
# a cgroup root of its own, as on a real host, and the machines (and this
# host's local stack, which uses /nomad) never share one. Part of making the
# machine, like its disk and network: a real host has this already.
machine_cgroups() {
  local m=$1 pid c out
  pid=$(leader_pid "$m") || die "$m is not running"
  [[ -d /sys/fs/cgroup/memory ]] || return 0 # cgroup v2: nspawn delegates a writable subtree
  # Runs in the machine's mount and cgroup namespaces, where mountinfo shows
  # the bind's source as /counter/<m>. Private mounts: nothing propagates.
  out=$(nsenter --target "$pid" --mount --cgroup --pid sh -ec "$(cat <<'SH'
m=$1
shift
if grep -q " /counter/$m /sys/fs/cgroup/memory " /proc/self/mountinfo; then
  echo already
  exit 0
fi
for c in "$@"; do
  d=/sys/fs/cgroup/$c
  mount --make-private "$d"
  mount -o remount,bind,rw "$d"
  mkdir -p "$d/counter/$m"
  if [ "$c" = cpuset ]; then
    for f in cpuset.cpus cpuset.mems; do
      cat "$d/$f" >"$d/counter/$f"
      cat "$d/$f" >"$d/counter/$m/$f"
    done
  fi
  mount --bind "$d/counter/$m" "$d"
  mount --make-private "$d"
done
SH
  )" sh "$m" "${NOMAD_CGROUPS[@]}") || die "$m: could not set up its cgroups"
  [[ $out == already ]] && return
  # The same directories as this host sees them (the machine's cgroup
  # namespace is rooted at nspawn's cgroup), for machine_stop.
  for c in "${NOMAD_CGROUPS[@]}"; do
    echo "/sys/fs/cgroup/$c$(awk -F: -v c="$c" '$2 == c {print $3}' "/proc/$pid/cgroup" |
      sed 's#/*$##')/counter/$m"
  done >"$(machine_dir "$m")/cgroups"
  log "$m: cgroups ${NOMAD_CGROUPS[*]} writable under counter/$m"
}

# machine_power_off <machine>: asks it to shut down (nspawn turns SIGTERM
# into a clean shutdown); machine_stop waits for it.
machine_power_off() {
  local pid
  if pid=$(nspawn_pid "$1"); then
    log "$1: powering off"
    kill -TERM "$pid" 2>/dev/null || true
  fi
}

# machine_stop <machine>: powers it off, then removes its overlay, cgroups,
# namespace, known_hosts line and state.
machine_stop() {
  local m=$1 dir pid deadline cg
  dir=$(machine_dir "$m")
  if pid=$(nspawn_pid "$m"); then
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 60))
    while kill -0 "$pid" 2>/dev/null; do
      if ((SECONDS >= deadline)); then
        warn "$m: still up after 60s; killing its processes and systemd-nspawn (pid $pid)"
        # SIGKILL to the machine's PID 1 ends every process of its PID
        # namespace; killing only nspawn would leave them running (and
        # holding the overlay and cgroups).
        local leader
        if leader=$(leader_pid "$m"); then kill -KILL "$leader" 2>/dev/null || true; fi
        kill -KILL "$pid" 2>/dev/null || true
        sleep 1
        break
      fi
      sleep 1
    done
  fi
  if [[ -d $dir/root ]] && mountpoint -q "$dir/root"; then
    umount "$dir/root" 2>/dev/null || umount -l "$dir/root"
  fi
  if [[ -f $dir/cgroups ]]; then
    while read -r cg; do
      # A cgroup still holding a process cannot go; never abort the teardown
      # (set -e) over it.
      if [[ -d $cg ]]; then find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
      rmdir "$(dirname "$cg")" 2>/dev/null || true
    done <"$dir/cgroups"
  fi
  machine_net_down "$m"
  if [[ -f $SSH_DIR/known_hosts ]]; then
    sed -i "/^$(machine_addr "$m") /d" "$SSH_DIR/known_hosts"
  fi
  rm -rf "$dir"
  log "$m: removed"
}
