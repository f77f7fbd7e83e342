# The test machines' network: a bridge on this host and, per machine, a
# network namespace with a veth on the bridge. Only 198.18.0.0/15 (the
# benchmarking range) is used. Sourced by scripts/cluster.
# shellcheck shell=bash

BRIDGE=ctr0
NET=198.18.0
# The floating gateway address: no machine's own (those are .11 up).
# shellcheck disable=SC2034  # read by inventory.sh
GATEWAY_VIP=$NET.250
HOST_ADDR=$NET.1

# machine_addr <machine>: mN's address, 198.18.0.(10+N).
machine_addr() { echo "$NET.$((10 + ${1#m}))"; }

net_up() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$HOST_ADDR/24" dev "$BRIDGE"
    log "bridge $BRIDGE: $HOST_ADDR/24"
  fi
  ip link set "$BRIDGE" up
}

net_down() {
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link del "$BRIDGE"
    log "bridge $BRIDGE: removed"
  fi
}

# machine_net_up <machine>: its namespace counter-<m>, veth ctr-<m> <-> eth0.
machine_net_up() {
  local m=$1 ns=counter-$1 addr
  addr=$(machine_addr "$m")
  [[ -e /run/netns/$ns ]] || ip netns add "$ns"
  if ! ip link show "ctr-$m" >/dev/null 2>&1; then
    ip link add "ctr-$m" type veth peer name eth0 netns "$ns"
  fi
  ip link set "ctr-$m" master "$BRIDGE" up
  ip -n "$ns" link set lo up
  ip -n "$ns" -4 addr show dev eth0 | grep -q "inet $addr/" ||
    ip -n "$ns" addr add "$addr/24" dev eth0
  # A machine powered off while holding the floating gateway address left it
  # on its namespace; it boots without it, as a real host does (keepalived
  # adds it again if elected).
  ip -n "$ns" addr del "$GATEWAY_VIP/24" dev eth0 2>/dev/null || true
  ip -n "$ns" link set eth0 up
}

# machine_net_down <machine>: its veth and namespace, if they exist.
machine_net_down() {
  local m=$1
  ip link del "ctr-$m" 2>/dev/null || true
  if [[ -e /run/netns/counter-$m ]]; then ip netns del "counter-$m" || warn "could not remove namespace counter-$m"; fi
}

# net_leftovers_down: namespaces and veths of a run that died before
# recording its machines.
net_leftovers_down() {
  local ns link
  for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^counter-m[0-9]+$/ {print $1}'); do
    ip netns del "$ns" && log "removed leftover namespace $ns"
  done
  for link in $(ip -o link show 2>/dev/null | awk -F': ' '$2 ~ /^ctr-m[0-9]+@/ {sub(/@.*/, "", $2); print $2}'); do
    ip link del "$link" && log "removed leftover veth $link"
  done
}
