# web: serves the count (GET /, read from the Redis replicas). Traefik routes
# every path except /inc here. scripts/up and the deploy submit it through
# counterops.jobs, which writes its variables to a var file; by hand, from
# the repo root:
#   nomad job run -var-file=$COUNTER_STATE/jobs/web.vars.hcl nomad/web.nomad.hcl

variable "version" {
  type        = string
  description = "Version of the web artifact: the first 12 hex digits of the binary's sha256 (scripts/artifacts)."
}

variable "artifact_url" {
  type        = string
  description = "Base URL of the artifact store; the tarball is <artifact_url>/<version>/web.tar.gz."
  default     = "http://127.0.0.1:8090"
}

variable "checksum" {
  type        = string
  description = "sha256 (hex) of web.tar.gz; Nomad refuses to start a download that does not match."
}

variable "consul_http_addr" {
  type        = string
  description = "Consul HTTP API the service discovers redis-primary and redis-replica through (the agent on the same machine)."
  default     = "http://127.0.0.1:8500"
}

variable "consul_cacert" {
  type        = string
  description = "CA file to verify an https:// consul_http_addr against (empty: the system's CAs; a cluster: its Consul CA)."
  default     = ""
}

variable "services_tls" {
  type        = bool
  description = "Serve HTTPS only, with this host's web certificate from /etc/counter/tls, and answer more than /health/* only to clients with a certificate of the services CA: the gateway (traefik's services_tls) and the metrics scraper (a cluster; false: plain HTTP, the local stack on loopback)."
  default     = false
}

variable "redis_tls_ca" {
  type        = string
  description = "CA file: connect to Redis over TLS and verify it against this CA (a cluster: its Redis CA; empty: plain TCP, the local stack on loopback)."
  default     = ""
}

variable "count" {
  type        = number
  description = "Allocations of web when the job is first submitted: 2 on one machine, more in the cluster (counterops.jobs passes it). Afterwards the autoscaler owns the count; scripts/up re-submits with -preserve-counts so it is not reset."
  default     = 2
}

variable "scaling_max" {
  type        = number
  description = "Most allocations the autoscaler may run: 6 on one machine; in the cluster at most one per host (distinct_hosts), so counterops.jobs passes the number of hosts (capped at 6)."
  default     = 6
}

variable "scaling_min" {
  type        = number
  description = "Fewest allocations the autoscaler keeps: 2 on one machine; in the cluster 3 (counterops.jobs), so a lost host still leaves two."
  default     = 2
}

variable "scaling_cpu_target" {
  type        = number
  description = "CPU each allocation should use on average, in percent of its reservation (resources.cpu, 100 MHz): the target-value strategy sizes the group as ceil(count * avg / target). 50: scale out before instances outgrow what Nomad reserved for them (docs/autoscaling.md)."
  default     = 50
}

variable "scaling_interval" {
  type        = string
  description = "How often the autoscaler reads web's CPU and decides (its evaluation_interval)."
  default     = "5s"
}

variable "scaling_cooldown" {
  type        = string
  description = "How long the autoscaler leaves web alone after it changed the count: long enough for new instances to start, pass their check and take load (min_healthy_time 5 s)."
  default     = "20s"
}

variable "canary" {
  type        = number
  description = "Canaries per rollout: 1 on one machine (a new instance is healthy before an old one stops), 0 in the cluster, where distinct_hosts leaves no machine free for one."
  default     = 1
}

variable "distinct_hosts" {
  type        = bool
  description = "Never place two instances on one machine (true in the cluster; false on one machine, where it would leave instances unplaced)."
  default     = false
}


variable "release" {
  type        = string
  description = "A label of this rollout, kept in the job's meta: a new value rolls every allocation, as a new version does (scripts/chaos rolling-deploy)."
  default     = "initial"
}

variable "task_user" {
  type        = string
  description = "The unprivileged system user of this job's tasks, its own (counter-web; counter_task_users in deploy/group_vars/all/settings.yml, which counterops.jobs passes and scripts/up and the deploy create). raw_exec would run the task as root otherwise; the clients refuse uid 0 (denied_host_uids). An empty string runs the task as the Nomad agent's own user (scripts/up when not run as root)."
}

variable "task_uid" {
  type        = number
  description = "The uid of task_user (counter_task_uids in deploy/group_vars/all/settings.yml; the gid of its group too): the task's secret files are rendered owned by it, readable by it alone. -1 leaves them the agent's (with an empty task_user)."
}

job "web" {
  meta {
    release = var.release
  }

  type = "service"

  # Rolling updates gated on the readiness check; a version that never gets
  # healthy is rolled back to the last good one. One canary first, promoted
  # automatically once healthy: a new instance is serving before any old one
  # stops, which matters most at count = 1 (without it, the only instance
  # stops first and Traefik has no route for the gap).
  update {
    canary            = var.canary
    auto_promote      = var.canary > 0
    max_parallel      = 1
    health_check      = "checks"
    min_healthy_time  = "5s"
    healthy_deadline  = "1m"
    progress_deadline = "2m"
    auto_revert       = true
  }

  group "web" {
    count = var.count

    # Autoscaling between scaling_min and scaling_max allocations on Nomad's own CPU
    # figures (docs/autoscaling.md). The nomad-autoscaler agent (the job
    # nomad/autoscaler.nomad.hcl, in both modes) reads this policy from the job
    # and changes the count through Nomad's scale API; Nomad itself only
    # checks that count stays within min and max. The nomad-apm source reads
    # /v1/client/allocation/<id>/stats of every running web allocation, so it
    # needs telemetry.publish_allocation_metrics on the clients. avg_cpu-allocated
    # is the mean, over the allocations, of CPU used as a percentage of
    # resources.cpu; target-value asks for ceil(count * mean / target).
    scaling {
      enabled = true
      min     = var.scaling_min
      max     = var.scaling_max

      policy {
        evaluation_interval = var.scaling_interval
        cooldown            = var.scaling_cooldown

        check "cpu" {
          source = "nomad-apm"
          query  = "avg_cpu-allocated"

          strategy "target-value" {
            target = var.scaling_cpu_target
          }
        }
      }
    }

    # One instance per machine, so losing a machine loses one instance, not
    # all: a hard rule in the cluster (distinct_hosts, rollouts without a
    # canary), a preference otherwise. The spread also makes the scheduler
    # score every machine rather than the first two it samples.
    spread {
      attribute = "${node.unique.id}"
    }

    constraint {
      operator = "distinct_hosts"
      value    = var.distinct_hosts
    }

    network {
      port "http" {}
    }

    service {
      name     = "web"
      provider = "consul"
      port     = "http"
      tags = concat([
        "traefik.enable=true",
        "traefik.http.routers.web.rule=PathPrefix(`/`)",
        # The catch-all: below /inc (100) and its fallback (50), above the
        # 503 fallback for / (1, traefik/fallback.yml).
        # Traefik's own probe of each instance, every second: it ejects a dead
        # instance before Consul's failure detection notices a lost machine.
        "traefik.http.services.web.loadbalancer.healthcheck.path=/health/ready",
        "traefik.http.services.web.loadbalancer.healthcheck.interval=1s",
        "traefik.http.services.web.loadbalancer.healthcheck.timeout=500ms",
        "traefik.http.routers.web.priority=10",
        # Reads are idempotent: a request that could not reach one instance
        # is sent to another, whatever happened to it on the first. web-inc's
        # retry only resends what never reached an instance.
        "traefik.http.routers.web.middlewares=web-retry",
        "traefik.http.middlewares.web-retry.retry.attempts=3",
        # /metrics and /health/* belong to each instance's own address, not
        # to the public gateway: above the catch-all, the path is rewritten to
        # one no service routes, so the client gets the services' usual JSON
        # 404 and nothing of an instance's metrics or health.
        "traefik.http.routers.web-internal.rule=Path(`/metrics`) || PathPrefix(`/health`)",
        "traefik.http.routers.web-internal.priority=20",
        "traefik.http.routers.web-internal.service=web",
        "traefik.http.routers.web-internal.middlewares=web-internal-hidden",
        "traefik.http.middlewares.web-internal-hidden.replacepath.path=/not-routed",
        ], var.services_tls ? [
        # Over mutual TLS: Traefik's transport web@file
        # (traefik/services-tls.yml) checks the name web.counter and
        # presents the gateway's client certificate.
        "traefik.http.services.web.loadbalancer.server.scheme=https",
        "traefik.http.services.web.loadbalancer.serversTransport=web@file",
      ] : [])

      # Traefik routes only to instances whose check passes. No check_restart:
      # an unreachable store makes the service unready, and restarting it
      # would not bring the store back.
      # Over HTTPS where the service serves it: the local Consul agent
      # presents no client certificate, which /health/* alone accepts, and
      # does not check the service's name (the gateway does).
      check {
        name            = "ready"
        type            = "http"
        protocol        = var.services_tls ? "https" : "http"
        tls_skip_verify = var.services_tls
        path            = "/health/ready"
        interval        = "1s"
        timeout         = "1s"
      }
    }

    task "web" {
      driver = "raw_exec"
      # Never root: the clients refuse uid 0 (raw_exec denied_host_uids).
      user = var.task_user

      artifact {
        source      = "${var.artifact_url}/${var.version}/web.tar.gz"
        destination = "local/"
        options {
          checksum = "sha256:${var.checksum}"
        }
      }

      # Through env(1), which drops the Consul token Nomad puts in the
      # environment of a task with a Consul identity: the service reads it
      # from its file (CONSUL_HTTP_TOKEN_FILE, below), and no process's
      # environment (/proc/PID/environ) holds a secret.
      config {
        command = "/usr/bin/env"
        args    = ["--unset=CONSUL_TOKEN", "--unset=CONSUL_HTTP_TOKEN", "${NOMAD_TASK_DIR}/web"]
      }

      # The secrets, as files in the task's secrets dir that its user alone
      # reads (0400, owned by task_uid: a template names its owner by
      # number): the Redis password of the ACL user web, from the Nomad
      # Variable nomad/jobs/web, which only this job's tasks can read, and
      # the Consul token this task's workload identity logged in for (the
      # consul block below; role nomad-tasks-web), which Nomad hands the
      # task as CONSUL_TOKEN. Nothing reaches argv, the environment or a
      # log. A changed secret restarts the task.
      dynamic "template" {
        for_each = {
          "redis-password" = "{{ with nomadVar \"nomad/jobs/web\" }}{{ .redis_password }}{{ end }}"
          "consul-token"   = "{{ env \"CONSUL_TOKEN\" }}"
        }
        content {
          data        = template.value
          destination = "secrets/${template.key}"
          perms       = "0400"
          uid         = var.task_uid
          gid         = var.task_uid
          change_mode = "restart"
        }
      }

      # The Redis user's name (no secret), from the same Variable.
      template {
        data        = "{{ with nomadVar \"nomad/jobs/web\" }}COUNTER_REDIS_USERNAME={{ .redis_username }}{{ end }}\n"
        destination = "local/redis-user.env"
        env         = true
        change_mode = "restart"
      }

      # The TLS files (a cluster's): the CAs of Consul and Redis, and the
      # service's own HTTPS, only when set: the service refuses an empty
      # setting, and an env block cannot leave a variable out.
      dynamic "template" {
        for_each = var.consul_cacert == "" && var.redis_tls_ca == "" && !var.services_tls ? [] : ["tls.env"]
        content {
          data = join("", [
            var.consul_cacert == "" ? "" : "CONSUL_CACERT=${var.consul_cacert}\n",
            var.redis_tls_ca == "" ? "" : "COUNTER_REDIS_TLS_CA=${var.redis_tls_ca}\n",
            var.services_tls ? join("", [
              "COUNTER_TLS_CERT=/etc/counter/tls/web.pem\n",
              "COUNTER_TLS_KEY=/etc/counter/tls/web-key.pem\n",
              "COUNTER_TLS_CLIENT_CA=/etc/counter/tls/services-ca.pem\n",
            ]) : "",
          ])
          destination = "local/${template.value}"
          env         = true
          change_mode = "restart"
        }
      }

      # The binary binds NOMAD_IP_http:NOMAD_PORT_http by itself.
      env {
        CONSUL_HTTP_ADDR            = var.consul_http_addr
        CONSUL_HTTP_TOKEN_FILE      = "${NOMAD_SECRETS_DIR}/consul-token"
        COUNTER_REDIS_PASSWORD_FILE = "${NOMAD_SECRETS_DIR}/redis-password"
        COUNTER_RUNTIME_FILE        = "${NOMAD_TASK_DIR}/runtime.env"
      }

      # A Consul block gives the task a workload identity for Consul (the
      # servers' consul.task_identity; without the block Nomad gives it none).
      # Nomad logs in with it (auth method nomad-workloads) and hands the task
      # the token: the secrets template above and the KV template below use
      # it (role nomad-tasks-web), never the agent's token, which may read no
      # KV and find no Redis.
      consul {}

      # Settings changed without a restart (docs/services.md, "Runtime settings"): Nomad renders
      # Consul KV under counter/config/all/ then counter/config/web/ (later
      # lines win) and sends SIGHUP when the file changes; the service applies
      # a valid file and keeps its settings on a bad one. `ls` of a missing
      # prefix renders nothing, so no key is needed to start.
      template {
        destination   = "local/runtime.env"
        change_mode   = "signal"
        change_signal = "SIGHUP"
        splay         = "0s"
        data          = <<-EOT
          {{ range ls "counter/config/all" }}{{ .Key }}={{ .Value }}
          {{ end }}{{ range ls "counter/config/web" }}{{ .Key }}={{ .Value }}
          {{ end }}
        EOT
      }

      # Stopping an allocation: Nomad deregisters it from Consul, waits
      # shutdown_delay (3 s) while Traefik drops it (watch + 1 s throttle),
      # then sends SIGTERM; the service drains in-flight requests for at most
      # its --drain-timeout (5 s) and exits. kill_timeout (10 s) > 5 s drain,
      # so SIGKILL only hits a drain that hangs.
      shutdown_delay = "3s"
      kill_signal    = "SIGTERM"
      kill_timeout   = "10s"

      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
