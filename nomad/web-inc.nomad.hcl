# web-inc: increments the count (POST /inc, and GET /inc for curl): INCR on
# the Redis primary, acknowledged once every in-sync replica (at least one) has it. Traefik routes /inc
# here. scripts/up and the deploy submit it through counterops.jobs, which
# writes its variables to a var file; by hand, from the repo root:
#   nomad job run -var-file=$COUNTER_STATE/jobs/web-inc.vars.hcl nomad/web-inc.nomad.hcl

variable "version" {
  type        = string
  description = "Version of the web-inc artifact: the first 12 hex digits of the binary's sha256 (scripts/artifacts)."
}

variable "artifact_url" {
  type        = string
  description = "Base URL of the artifact store; the tarball is <artifact_url>/<version>/web-inc.tar.gz."
  default     = "http://127.0.0.1:8090"
}

variable "checksum" {
  type        = string
  description = "sha256 (hex) of web-inc.tar.gz; Nomad refuses to start a download that does not match."
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
  description = "Serve HTTPS only, with this host's web-inc certificate from /etc/counter/tls, and answer more than /health/* only to clients with a certificate of the services CA: the gateway (traefik's services_tls) and the metrics scraper (a cluster; false: plain HTTP, the local stack on loopback)."
  default     = false
}

variable "redis_tls_ca" {
  type        = string
  description = "CA file: connect to Redis over TLS and verify it against this CA (a cluster: its Redis CA; empty: plain TCP, the local stack on loopback)."
  default     = ""
}

variable "count" {
  type        = number
  description = "Allocations of web-inc: 1 on one machine, more in the cluster (counterops.jobs passes it)."
  default     = 1
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

variable "inc_limit_per_client" {
  type        = number
  description = "Increments per second one client address may make through the gateway (a burst of as many at once); beyond it Traefik answers 429 with Retry-After. 0: no limit. counter_inc_limit_per_client in deploy/group_vars/all/settings.yml, which counterops.jobs passes (and a cluster's inventory may override)."
  validation {
    condition     = var.inc_limit_per_client >= 0 && floor(var.inc_limit_per_client) == var.inc_limit_per_client
    error_message = "The variable inc_limit_per_client must be a whole number, 0 (no limit) or more."
  }
}

variable "task_user" {
  type        = string
  description = "The unprivileged system user of this job's tasks, its own (counter-web-inc; counter_task_users in deploy/group_vars/all/settings.yml, which counterops.jobs passes and scripts/up and the deploy create). raw_exec would run the task as root otherwise; the clients refuse uid 0 (denied_host_uids). An empty string runs the task as the Nomad agent's own user (scripts/up when not run as root)."
}

variable "task_uid" {
  type        = number
  description = "The uid of task_user (counter_task_uids in deploy/group_vars/all/settings.yml; the gid of its group too): the task's secret files are rendered owned by it, readable by it alone. -1 leaves them the agent's (with an empty task_user)."
}

job "web-inc" {
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

  group "web-inc" {
    count = var.count

    # The count is the deploy's alone: Nomad's scale API refuses any count
    # outside min..max, so the autoscaler, which may scale jobs in this
    # namespace, cannot stop increments by scaling web-inc to 0 (a changed
    # count is a re-submitted job). Disabled: no policy to act on.
    scaling {
      enabled = false
      min     = var.count
      max     = var.count
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
      name     = "web-inc"
      provider = "consul"
      port     = "http"
      tags = concat([
        "traefik.enable=true",
        "traefik.http.routers.web-inc.rule=PathPrefix(`/inc`)",
        # Above web's catch-all PathPrefix(`/`) (10) and the 503 fallback for
        # /inc (50, traefik/fallback.yml).
        # Traefik's own probe of each instance, every second: it ejects a dead
        # instance before Consul's failure detection notices a lost machine.
        "traefik.http.services.web-inc.loadbalancer.healthcheck.path=/health/ready",
        "traefik.http.services.web-inc.loadbalancer.healthcheck.interval=1s",
        "traefik.http.services.web-inc.loadbalancer.healthcheck.timeout=500ms",
        "traefik.http.routers.web-inc.priority=100",
        # Per client address (the connection's own: X-Forwarded-For is not
        # trusted, so a client cannot pick another one): 429 + Retry-After
        # once it has used its second's worth. Checked before the request
        # reaches web-inc, so a refused increment counts nothing.
        "traefik.http.routers.web-inc.middlewares=web-inc-limit,web-inc-retry",
        "traefik.http.middlewares.web-inc-limit.ratelimit.average=${var.inc_limit_per_client}",
        "traefik.http.middlewares.web-inc-limit.ratelimit.period=1s",
        "traefik.http.middlewares.web-inc-limit.ratelimit.burst=${max(var.inc_limit_per_client, 1)}",
        # An increment that could not reach an instance (connection refused:
        # an instance gone since the catalog last looked, such as a returning
        # machine's old allocations) goes to another. Never one the instance
        # got: Traefik's standard engine stops retrying once it has written
        # the request's headers, so an increment that may have counted is
        # answered 502, not sent twice (tests/tools/test_gateway_inc_retry.py).
        "traefik.http.middlewares.web-inc-retry.retry.attempts=2",
        ], var.services_tls ? [
        # Over mutual TLS: Traefik's transport web-inc@file
        # (traefik/services-tls.yml) checks the name web-inc.counter and
        # presents the gateway's client certificate.
        "traefik.http.services.web-inc.loadbalancer.server.scheme=https",
        "traefik.http.services.web-inc.loadbalancer.serversTransport=web-inc@file",
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

    task "web-inc" {
      driver = "raw_exec"
      # Never root: the clients refuse uid 0 (raw_exec denied_host_uids).
      user = var.task_user

      artifact {
        source      = "${var.artifact_url}/${var.version}/web-inc.tar.gz"
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
        args    = ["--unset=CONSUL_TOKEN", "--unset=CONSUL_HTTP_TOKEN", "${NOMAD_TASK_DIR}/web-inc"]
      }

      # The secrets, as files in the task's secrets dir that its user alone
      # reads (0400, owned by task_uid: a template names its owner by
      # number): the Redis password of the ACL user web-inc, from the Nomad
      # Variable nomad/jobs/web-inc, which only this job's tasks can read, and
      # the Consul token this task's workload identity logged in for (the
      # consul block below; role nomad-tasks-web-inc), which Nomad hands the
      # task as CONSUL_TOKEN. Nothing reaches argv, the environment or a
      # log. A changed secret restarts the task.
      dynamic "template" {
        for_each = {
          "redis-password" = "{{ with nomadVar \"nomad/jobs/web-inc\" }}{{ .redis_password }}{{ end }}"
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
        data        = "{{ with nomadVar \"nomad/jobs/web-inc\" }}COUNTER_REDIS_USERNAME={{ .redis_username }}{{ end }}\n"
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
              "COUNTER_TLS_CERT=/etc/counter/tls/web-inc.pem\n",
              "COUNTER_TLS_KEY=/etc/counter/tls/web-inc-key.pem\n",
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
      # it (role nomad-tasks-web-inc), never the agent's token, which may read no
      # KV and find no Redis.
      consul {}

      # Settings changed without a restart (docs/services.md, "Runtime settings"): Nomad renders
      # Consul KV under counter/config/all/ then counter/config/web-inc/ (later
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
          {{ end }}{{ range ls "counter/config/web-inc" }}{{ .Key }}={{ .Value }}
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
