# traefik: the gateway. A system job, so every client machine runs one
# (locally: the one). Its configuration (traefik/: traefik.yml, fallback.yml,
# dashboard.yml, and a cluster's gateway-tls.yml) travels inside the job,
# read by the nomad CLI when the job is submitted, so submit it from the
# repository's root; routes come from the Consul Catalog tags of the web and
# web-inc services. scripts/up and the deploy submit it through
# counterops.jobs, which writes the variables to a var file; by hand:
#   nomad job run -var-file=$COUNTER_STATE/jobs/traefik.vars.hcl nomad/traefik.nomad.hcl

variable "traefik_binary" {
  type        = string
  description = "Absolute path of the traefik binary on every client (scripts/install puts it under ~/.cache/counter/tools)."
  default     = "/usr/local/bin/traefik"
}

variable "gateway_bind" {
  type        = string
  description = "Address the gateway's entrypoints listen on: 127.0.0.1 on the local stack; empty in a cluster, every address of the machine (its own and the floating gateway address)."
  default     = "127.0.0.1"
}

variable "https" {
  type        = bool
  description = "Serve HTTPS on :8443 with the machine's certificate (traefik/gateway-tls.yml; a cluster)."
  default     = false
}

variable "services_tls" {
  type        = bool
  description = "Reach web and web-inc over mutual TLS (traefik/services-tls.yml; a cluster), as their jobs' services_tls says."
  default     = false
}

variable "task_user" {
  type        = string
  description = "The unprivileged system user of this job's tasks, its own (counter-traefik; counter_task_users in deploy/group_vars/all/settings.yml, which counterops.jobs passes and scripts/up and the deploy create). raw_exec would run the task as root otherwise; the clients refuse uid 0 (denied_host_uids). An empty string runs the task as the Nomad agent's own user (scripts/up when not run as root)."
}

variable "task_uid" {
  type        = number
  description = "The uid of task_user (counter_task_uids in deploy/group_vars/all/settings.yml; the gid of its group too): the Consul token's file is rendered owned by it, readable by it alone. -1 leaves it the agent's (with an empty task_user)."
}

job "traefik" {
  type = "system"

  update {
    max_parallel = 1
  }

  group "traefik" {
    # Static: the entrypoints' addresses in traefik.yml. Declared so Nomad
    # never hands these ports to another allocation.
    network {
      port "web" {
        static = 8080
      }
      port "admin" {
        static = 8081
      }
      # The HTTPS entrypoint, where there is a certificate.
      dynamic "port" {
        for_each = var.https ? ["websecure"] : []
        labels   = [port.value]
        content {
          static = 8443
        }
      }
    }

    # Not routed (no traefik.enable tag): registered for health and discovery.
    service {
      name     = "traefik"
      provider = "consul"
      port     = "admin"
      check {
        name     = "ping"
        type     = "http"
        path     = "/ping"
        interval = "1s"
        timeout  = "1s"
      }
    }

    task "traefik" {
      driver = "raw_exec"
      # Never root: the clients refuse uid 0 (raw_exec denied_host_uids).
      user = var.task_user

      # Through env(1), which drops the Consul token Nomad puts in the
      # environment of a task with a Consul identity: Traefik's Consul client
      # reads it from its file (CONSUL_HTTP_TOKEN_FILE, below), and no
      # process's environment (/proc/PID/environ) holds a secret.
      config {
        command = "/usr/bin/env"
        args = [
          "--unset=CONSUL_TOKEN", "--unset=CONSUL_HTTP_TOKEN",
          var.traefik_binary, "--configFile=${NOMAD_TASK_DIR}/traefik.yml",
        ]
      }

      # Delimiters nobody writes in YAML: the file is copied verbatim, even if
      # it one day holds Traefik's own {{ }} templates (e.g. defaultRule).
      template {
        data            = file("traefik/traefik.yml")
        destination     = "local/traefik.yml"
        left_delimiter  = "[[nomad:"
        right_delimiter = ":nomad]]"
        # No secret in it (the Consul token has its own file, below), so
        # the default 0644: the task runs as task_user, and Nomad renders
        # templates as root.
        change_mode = "restart"
      }

      # Traefik's file provider reloads these by itself; no restart.
      dynamic "template" {
        for_each = concat(["fallback.yml", "dashboard.yml"], var.https ? ["gateway-tls.yml"] : [],
        var.services_tls ? ["services-tls.yml"] : [])
        content {
          data            = file("traefik/${template.value}")
          destination     = "local/dynamic/${template.value}"
          left_delimiter  = "[[nomad:"
          right_delimiter = ":nomad]]"
          change_mode     = "noop"
        }
      }

      # Go's collector runs once the heap has grown 400 % (default 100 %):
      # 11 % less CPU per request, 1.17x the ceiling, for 170-200 MB peak RSS
      # instead of 114-133 (ROUNDS=5 TRAEFIK_VARIANTS=GOGC=200,GOGC=100 scripts/bench
      # traefik; docs/benchmarks.md). An environment variable, so not in
      # traefik.yml; scripts/bench gives its Traefik this job's env too.
      env {
        GOGC = "400"
        # Read by traefik.yml's template (above).
        COUNTER_GATEWAY_BIND = var.gateway_bind
        COUNTER_GATEWAY_TLS  = var.https ? "yes" : ""
        # The token's file (below), read by Traefik's Consul client.
        CONSUL_HTTP_TOKEN_FILE = "${NOMAD_SECRETS_DIR}/consul-token"
      }

      # A workload identity for Consul: Nomad logs in to the auth method
      # nomad-workloads with it and hands the task the token as CONSUL_TOKEN
      # (and secrets/consul_token, which is root's: 0640 root:root).
      consul {}

      # Traefik's Consul token (reads web and web-inc only): the workload
      # identity's (role nomad-tasks-traefik: gateway-catalog,
      # scripts/counterops/acl.toml), in a file of the task's secrets dir that
      # its user alone reads (0400, owned by task_uid), named by
      # CONSUL_HTTP_TOKEN_FILE, which Traefik's Consul client reads (traefik.yml
      # names no token). Nothing reaches argv, the environment, a log or the
      # job spec.
      template {
        data        = "{{ env \"CONSUL_TOKEN\" }}"
        destination = "secrets/consul-token"
        perms       = "0400"
        uid         = var.task_uid
        gid         = var.task_uid
        change_mode = "restart"
      }

      # Traefik finishes in-flight requests for up to graceTimeOut (5 s in
      # traefik.yml) after SIGTERM; 10 s leaves room before SIGKILL.
      kill_signal  = "SIGTERM"
      kill_timeout = "10s"

      resources {
        cpu = 200
        # Peak RSS under load is 170-200 MB with GOGC=400 (above).
        memory = 256
      }
    }
  }
}
