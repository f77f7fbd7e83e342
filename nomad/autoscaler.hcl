# Nomad Autoscaler agent for the local stack. scripts/up starts it as
#   nomad-autoscaler agent -config=<this file>
# next to the local Nomad agent; scripts/down stops it. It reads the scaling
# policies from the jobs themselves (the `scaling` block of web's group in
# nomad/web.nomad.hcl) and changes the group's count through Nomad's scale
# API. Why and with which numbers: docs/autoscaling.md.

# BASE
log_level = "INFO"

# NETWORK
# Health (/v1/health) and metrics API. Its default port, 8080, is the
# gateway's; 127.0.0.1:8082 is free in the local stack's port plan.
http {
  bind_address = "127.0.0.1"
  bind_port    = 8082
}

# NOMAD
# The local agent (nomad/local.hcl), which is also the only server.
nomad {
  address = "http://127.0.0.1:4646"
}

# POLICIES
# Only the policies in job specs: no policy directory, so the file source
# stays off. The defaults below apply to a policy that does not set its own
# (web's sets both).
policy {
  default_evaluation_interval = "10s"
  default_cooldown            = "1m"
}

# PLUGINS
# All three are compiled into the agent binary (plugins/builtin in the
# nomad-autoscaler module): nothing is loaded from a plugin directory.
# nomad-apm reads each allocation's CPU and memory from Nomad's allocation
# stats API, which Nomad fills only with telemetry.publish_allocation_metrics
# on (nomad/local.hcl).
apm "nomad-apm" {
  driver = "nomad-apm"
}

strategy "target-value" {
  driver = "target-value"
}

target "nomad-target" {
  driver = "nomad-target"
}
