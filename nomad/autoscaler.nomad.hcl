# autoscaler: the Nomad Autoscaler as a Nomad job, on the local stack and in
# a cluster. It reads web's scaling policy from the job and changes web's
# count through Nomad's scale API (docs/autoscaling.md). It reaches Nomad
# through the Task API socket of its own allocation with its workload
# identity: no token to hand out, and the Nomad ACL policy `autoscaler`,
# bound to this job (scripts/counterops/acl.toml), says what it may do.
#   nomad job run nomad/autoscaler.nomad.hcl

variable "autoscaler_binary" {
  type        = string
  description = "Absolute path of the nomad-autoscaler binary on every client (the deploy installs it there)."
  default     = "/usr/local/bin/nomad-autoscaler"
}

variable "task_user" {
  type        = string
  description = "The unprivileged system user of this job's tasks, its own (counter-autoscaler; counter_task_users in deploy/group_vars/all/settings.yml, which counterops.jobs passes and scripts/up and the deploy create). raw_exec would run the task as root otherwise; the clients refuse uid 0 (denied_host_uids). An empty string runs the task as the Nomad agent's own user (scripts/up when not run as root)."
}

variable "task_uid" {
  type        = number
  description = "The uid of task_user (counter_task_uids in deploy/group_vars/all/settings.yml; the gid of its group too): the agent's config, which holds its token, is rendered owned by it, readable by it alone. -1 leaves it the agent's (with an empty task_user)."
}

job "autoscaler" {
  type = "service"

  group "autoscaler" {
    count = 1

    # One instance, always: the scale API refuses any other count, so the
    # autoscaler cannot scale itself away (see web-inc's).
    scaling {
      enabled = false
      min     = 1
      max     = 1
    }

    # Restarted where it ran, then elsewhere: it keeps no state of its own
    # (the policies live in the jobs, the counts in Nomad).
    restart {
      attempts = 3
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    network {
      port "http" {}
    }

    task "autoscaler" {
      driver = "raw_exec"
      # Never root: the clients refuse uid 0 (raw_exec denied_host_uids).
      user = var.task_user

      config {
        command = var.autoscaler_binary
        args    = ["agent", "-config", "${NOMAD_SECRETS_DIR}/autoscaler.hcl"]
      }

      # This task's workload identity, accepted by the Task API, as the file
      # secrets/nomad_token, which Nomad writes readable by the task's user
      # alone; not NOMAD_TOKEN: no process's environment holds a secret.
      identity {
        file = true
      }

      # The agent's config holds the token (the autoscaler reads no token
      # file): in the secrets dir, readable by the task's user alone (0400,
      # owned by task_uid: a template names its owner by number).
      template {
        destination = "secrets/autoscaler.hcl"
        perms       = "0400"
        uid         = var.task_uid
        gid         = var.task_uid
        change_mode = "restart"
        data        = <<-HCL
          log_level = "INFO"
          # Health and metrics API, on loopback only.
          http {
            bind_address = "127.0.0.1"
            bind_port    = {{ env "NOMAD_PORT_http" }}
          }
          # The Task API: this allocation's own socket to its Nomad agent.
          nomad {
            address = "unix://{{ env "NOMAD_SECRETS_DIR" }}/api.sock"
            token   = "{{ file (print (env "NOMAD_SECRETS_DIR") "/nomad_token") }}"
          }
          policy {
            default_evaluation_interval = "10s"
            default_cooldown            = "1m"
          }
          apm "nomad-apm" {
            driver = "nomad-apm"
          }
          strategy "target-value" {
            driver = "target-value"
          }
          target "nomad-target" {
            driver = "nomad-target"
          }
        HCL
      }

      resources {
        cpu    = 100
        memory = 128
      }
    }
  }
}
