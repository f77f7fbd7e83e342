# Nomad agent for the local stack: one server that is also the only client,
# on loopback, running tasks as plain processes (raw_exec). Started by
# nomad.service or scripts/up as
#   nomad agent -config=<dir with this file> -data-dir=<state>
# so the data directory is the caller's choice, not this file's.

# BASE
name                 = "local"
region               = "global"
datacenter           = "dc1"
log_level            = "INFO"
disable_update_check = true

# NETWORK
# HTTP, RPC and Serf on loopback only: nothing outside this machine talks to
# this agent.
bind_addr = "127.0.0.1"
advertise {
  http = "127.0.0.1"
  rpc  = "127.0.0.1"
  serf = "127.0.0.1"
}

# SERVER
# A single server elects itself leader; no other server will ever join.
server {
  enabled          = true
  bootstrap_expect = 1
}

# CLIENT
client {
  enabled = true
  # Allocations get their addresses (NOMAD_IP_<label>) from loopback, so the
  # services, their Consul registrations and Traefik's backends stay there.
  network_interface = "lo"

  options = {
    # No cloud metadata service on a development machine: probing one only
    # slows startup, and env_aws aborts the agent when AWS_CA_BUNDLE is set.
    "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean"
  }
}

# PLUGINS
# The services are plain binaries run as processes, not containers. raw_exec
# is off by default because it runs tasks with the agent's privileges; here
# that is the developer's own machine and account.
plugin "raw_exec" {
  config {
    enabled = true
  }
}

# TELEMETRY
# The client samples each task's CPU and memory only while it publishes
# allocation metrics (Nomad's task runner starts its stats hook only then);
# without it /v1/client/allocation/<id>/stats reports zeros, and the
# autoscaler's nomad-apm plugin, which reads that API, would see idle
# allocations forever. Sampled every second (the default, stated because the
# scaling policy's timing in nomad/web.nomad.hcl builds on it).
telemetry {
  publish_allocation_metrics = true
  collection_interval        = "1s"
}

# CONSUL
# Jobs register their services (and the checks Traefik routes on) in the
# local Consul agent.
consul {
  address = "127.0.0.1:8500"
}
