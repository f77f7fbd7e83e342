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

# ACL
# Nothing without a token: anonymous requests (any local user, or a web page
# POSTing to 127.0.0.1:4646) may not read or submit jobs. scripts/up
# bootstraps the ACLs with a management token it generated into
# $COUNTER_STATE/secrets (0600); `eval "$(scripts/env)"` hands it to the CLI.
acl {
  enabled = true
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
# is off by default because it runs tasks with the agent's privileges (root).
# Every job here names an unprivileged task user (`user`, the jobs'
# task_user variable: the system user `counter` that scripts/up creates), and
# denied_host_uids makes the driver refuse, before starting it, a task that
# would run as root: one whose `user` is root, or (the agent running as root)
# one that names no user. Other users are allowed; the ACLs below decide who
# may submit jobs at all.
plugin "raw_exec" {
  config {
    enabled          = true
    denied_host_uids = "0"
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
# local Consul agent. Consul's ACLs are on (default deny): the agent's own
# token is in the secrets.hcl scripts/up writes next to this file (0600);
# services and tasks log in to Consul's auth method nomad-workloads with
# these workload identities (JWTs signed by this server) and get tokens of
# their own, as in the cluster (deploy/roles/cluster_acl).
consul {
  address = "127.0.0.1:8500"
  service_identity {
    aud = ["consul.io"]
    ttl = "1h"
  }
  task_identity {
    aud = ["consul.io"]
    ttl = "1h"
  }
}
