# Consul server role, added to consul.hcl on the first three machines of a
# Counter cluster (scripts/install-node --server). Three servers form the
# Raft quorum: the catalog survives the loss of any one machine.

# SERVER
server = true
# Wait for all three before electing a leader, so two halves of a slow boot
# never bootstrap two clusters.
bootstrap_expect = 3

# UI
# Served on client_addr: loopback and the cluster network, never beyond.
ui_config {
  enabled = true
}

# PERFORMANCE
# Machines on one bridge have sub-millisecond latency: the fastest Raft
# timings make elections and catalog updates take well under a second.
performance {
  raft_multiplier = 1
}
