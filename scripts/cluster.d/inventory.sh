# The test machines as an Ansible inventory: the same kind of file an
# operator writes for real hosts (deploy/inventory.example.yml), which
# scripts/deploy then deploys over SSH. Sourced by scripts/cluster.
# shellcheck shell=bash

INVENTORY=$CLUSTER_STATE/inventory.yml

# write_inventory <machine...>: the inventory of these machines; the first
# three are the servers, the first starts as the Redis primary.
write_inventory() {
  local m i=0
  {
    cat <<YAML
# The test machines of scripts/cluster (written by it; do not edit). The deploy
# reaches them over SSH with this cluster's key, checking their host keys.
all:
  vars:
    ansible_user: root
    ansible_ssh_private_key_file: $SSH_DIR/id_ed25519
    ansible_ssh_common_args: -o UserKnownHostsFile=$SSH_DIR/known_hosts -o IdentitiesOnly=yes
    # The deploy keeps this cluster's secrets here (secrets/, 0700).
    counter_state_dir: $CLUSTER_STATE
    # One gateway address for clients, held by one machine at a time
    # (keepalived, deploy/roles/gateway_vip).
    counter_gateway_vip: $GATEWAY_VIP
  children:
    servers:
      hosts:
YAML
    for m in "$@"; do
      ((i++ < 3)) && echo "        $m:"
    done
    echo "    clients:"
    echo "      hosts:"
    for m in "$@"; do
      echo "        $m:"
      echo "          ansible_host: $(machine_addr "$m")"
    done
    cat <<YAML
    redis_primary:
      hosts:
        $1:
YAML
  } >"$INVENTORY.tmp"
  mv "$INVENTORY.tmp" "$INVENTORY"
}
