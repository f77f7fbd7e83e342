"""The Ansible inventory of scripts/cluster's test machines (machines.py makes
them): what scripts/deploy reads, the same kind of file an operator writes."""

from .machines import GATEWAY_VIP, SSH_DIR, addr
from .target import TEST_CLUSTER


def write_inventory(names):
    """The machines as an Ansible inventory: the same kind of file an operator
    writes for real hosts (deploy/inventory.example.yml); the first three are
    the servers, the first starts as the Redis primary."""
    lines = ["# The test machines of scripts/cluster (written by it; do not edit). The deploy",
             "# reaches them over SSH with this cluster's key, checking their host keys.",
             "all:", "  vars:", "    ansible_user: root",
             f"    ansible_ssh_private_key_file: {SSH_DIR / 'id_ed25519'}",
             f"    ansible_ssh_common_args: -o UserKnownHostsFile={SSH_DIR / 'known_hosts'} -o IdentitiesOnly=yes",
             "    # The deploy keeps this cluster's secrets here (secrets/, 0700).",
             f"    counter_state_dir: {TEST_CLUSTER}",
             "    # One gateway address for clients, held by one machine at a time (keepalived).",
             f"    counter_gateway_vip: {GATEWAY_VIP}",
             "    # Far above the chaos loads' ~700 increments a second from this one client",
             "    # (docs/deploy.md, 'Limits at the gateway'); test_2_security sets 100.",
             "    counter_inc_limit_per_client: 20000",
             "  children:", "    servers:", "      hosts:", *[f"        {m}:" for m in names[:3]],
             "    clients:", "      hosts:", *[f"        {m}:\n          ansible_host: {addr(m)}" for m in names],
             "    redis_primary:", "      hosts:", f"        {names[0]}:"]
    inventory = TEST_CLUSTER / "inventory.yml"
    inventory.with_suffix(".tmp").write_text("\n".join(lines) + "\n")
    inventory.with_suffix(".tmp").rename(inventory)
    return inventory
