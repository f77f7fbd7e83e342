# Consul agent for the local stack: one server that is also the only client,
# on loopback. Started by consul.service or scripts/up as
#   consul agent -config-dir=<dir with this file and redis-local.hcl> -data-dir=<state>
# so the data directory is the caller's choice, not this file's.

# BASE
node_name  = "local"
datacenter = "dc1"
log_level  = "INFO"
# A single server elects itself leader; no other agent will ever join.
server           = true
bootstrap_expect = 1
# No calls home from a test machine.
disable_update_check = true

# NETWORK
# Everything on loopback: the local stack is reachable from this machine only.
bind_addr   = "127.0.0.1"
client_addr = "127.0.0.1"
ports {
  # Not used by Nomad without Connect; one listener fewer to collide with.
  grpc = -1
}

# UI
# Served on client_addr, so on loopback only: http://127.0.0.1:8500/ui
ui_config {
  enabled = true
}

# ACL
# Default deny: an anonymous request sees no service, node or key. scripts/up
# generates the tokens into $COUNTER_STATE/secrets (0600) and writes them into
# secrets.hcl next to this file (initial_management, agent); the policies,
# the other tokens and the auth method of Nomad's workload identities are
# created through the API (scripts/up.d/acl.py), as the cluster's deploy does.
acl {
  enabled                  = true
  default_policy           = "deny"
  down_policy              = "extend-cache"
  enable_token_persistence = false
}

# CHECKS
# The Redis role checks (redis-local.hcl) are scripts. Allowing scripts only
# from local config files, not from the HTTP API, keeps this open to the
# agent's own configuration and nobody else.
enable_local_script_checks = true

# PERFORMANCE
# A single local server has no network latency to absorb: the fastest Raft
# timings make leader election and catalog updates take well under a second.
performance {
  raft_multiplier = 1
}
