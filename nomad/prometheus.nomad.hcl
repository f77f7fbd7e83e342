# prometheus: collects the metrics of every part of Counter and evaluates
# its alerts (prometheus/alerts.yml), with Alertmanager beside it routing
# them. Debian's prometheus and prometheus-alertmanager (scripts/install),
# run by Nomad like the rest. Its targets come from Consul's catalog through
# this job's own workload identity (Consul role nomad-tasks-prometheus,
# scripts/counterops/acl.toml): Nomad's template engine follows the catalog
# with blocking queries and writes prometheus/targets.yml.tpl's file, which
# Prometheus re-reads by itself (file_sd); Prometheus holds no catalog
# token. docs/observability.md, "Metrics and alerts".
#   nomad job run -var-file=$COUNTER_STATE/jobs/prometheus.vars.hcl nomad/prometheus.nomad.hcl

variable "task_user" {
  type        = string
  description = "The unprivileged system user of this job's tasks, its own (counter-prometheus; counter_task_users in deploy/group_vars/all/settings.yml). An empty string runs the tasks as the Nomad agent's own user (scripts/up when not run as root)."
}

variable "task_uid" {
  type        = number
  description = "The uid of task_user (counter_task_uids in deploy/group_vars/all/settings.yml; the gid of its group too): the Consul token's file is rendered owned by it, readable by it alone. -1 leaves it the agent's (with an empty task_user)."
}

variable "data_dir" {
  type        = string
  description = "Prometheus' and Alertmanager's data, outside the allocation so that it outlives it (a restart, a new version of the job): owned by task_user. scripts/up: <local state>/prometheus."
}

variable "tls" {
  type        = bool
  description = "A cluster's: every scrape over TLS, each verified against its role's CA and name (Consul client.<dc>.consul, Nomad client.global.nomad, web.counter, web-inc.counter, exporters.counter), with Prometheus' client certificate of the services CA (metrics-client.pem) where one is asked for."
  default     = false
}

variable "consul_tls_name" {
  type        = string
  description = "The name every Consul agent's certificate carries (client.<datacenter>.consul), checked when tls is on."
  default     = "client.dc1.consul"
}

variable "retention" {
  type        = string
  description = "How long samples are kept (also capped at 1 GB). At a 5 s scrape interval a day of the local stack is about 20 MB."
  default     = "7d"
}

job "prometheus" {
  type = "service"

  group "prometheus" {
    count = 1

    # A new version of the job is placed on the machine the old one ran on
    # when it can be: the data (data_dir) is that machine's.
    ephemeral_disk {
      sticky = true
    }

    # Static: operators, scripts/status and the tests find them there.
    network {
      port "http" {
        static = 9090
      }
      port "alertmanager" {
        static = 9093
      }
    }

    # Counter's dashboard through every machine's Traefik, on its
    # loopback-only dashboard entrypoint (127.0.0.1:8079, beside Traefik's
    # own), never the public ones: the router names its entrypoint.
    service {
      name     = "prometheus"
      provider = "consul"
      port     = "http"
      tags = [
        "traefik.enable=true",
        "traefik.http.routers.counter-dashboard.entrypoints=dashboard",
        "traefik.http.routers.counter-dashboard.rule=Path(`/consoles/counter.html`)",
      ]
      check {
        type     = "http"
        path     = "/-/ready"
        interval = "5s"
        timeout  = "2s"
      }
    }

    # Alertmanager's API can silence alerts: loopback only, where Prometheus
    # beside it and the host's Consul agent (its check) reach it.
    service {
      name     = "alertmanager"
      provider = "consul"
      port     = "alertmanager"
      address  = "127.0.0.1"
      check {
        type     = "http"
        path     = "/-/ready"
        interval = "5s"
        timeout  = "2s"
      }
    }

    task "prometheus" {
      driver = "raw_exec"
      user   = var.task_user

      # Through env(1), which drops the Consul token Nomad puts in the
      # environment of a task with a Consul identity: no process's
      # environment (/proc/PID/environ) holds a secret.
      config {
        command = "/usr/bin/env"
        args = [
          "--unset=CONSUL_TOKEN", "--unset=CONSUL_HTTP_TOKEN",
          "/usr/bin/prometheus",
          "--config.file=${NOMAD_TASK_DIR}/prometheus.yml",
          "--storage.tsdb.path=${var.data_dir}/prometheus",
          "--storage.tsdb.retention.time=${var.retention}",
          "--storage.tsdb.retention.size=1GB",
          # The machine's own address (loopback locally; the cluster network
          # on a host, never the public gateway): read-only, no admin API.
          "--web.listen-address=${NOMAD_IP_http}:${NOMAD_PORT_http}",
          # Counter's dashboard (prometheus/consoles/counter.html): /consoles/counter.html.
          "--web.console.templates=${NOMAD_TASK_DIR}/consoles",
          "--web.console.libraries=${NOMAD_TASK_DIR}/consoles",
          "--log.level=warn",
        ]
      }

      # The Consul agents' /v1/agent/metrics needs a token (agent:read): the
      # task's own (its workload identity's), in a file of its secrets dir
      # that its user alone reads (0400, owned by task_uid), which the scrape
      # configuration names (credentials_file).
      template {
        data        = "{{ env \"CONSUL_TOKEN\" }}"
        destination = "secrets/consul.token"
        perms       = "0400"
        uid         = var.task_uid
        gid         = var.task_uid
        change_mode = "restart"
      }

      consul {}

      # Read by prometheus.yml's and targets.yml's templates.
      env {
        COUNTER_METRICS_TLS     = var.tls ? "yes" : ""
        COUNTER_CONSUL_TLS_NAME = var.consul_tls_name
      }

      template {
        data            = file("prometheus/prometheus.yml")
        destination     = "local/prometheus.yml"
        left_delimiter  = "[[nomad:"
        right_delimiter = ":nomad]]"
        change_mode     = "signal"
        change_signal   = "SIGHUP"
      }

      template {
        data            = file("prometheus/alerts.yml")
        destination     = "local/alerts.yml"
        left_delimiter  = "[[nomad:"
        right_delimiter = ":nomad]]"
        change_mode     = "signal"
        change_signal   = "SIGHUP"
      }

      # The dashboard: read from disk at each request, no signal needed.
      template {
        data            = file("prometheus/consoles/counter.html")
        destination     = "local/consoles/counter.html"
        left_delimiter  = "[[nomad:"
        right_delimiter = ":nomad]]"
        change_mode     = "noop"
      }

      # The targets, from the catalog: Prometheus re-reads the file when it
      # changes (file_sd), no signal needed.
      template {
        data        = file("prometheus/targets.yml.tpl")
        destination = "local/targets.yml"
        change_mode = "noop"
      }

      resources {
        cpu    = 200
        memory = 512
      }
    }

    task "alertmanager" {
      driver = "raw_exec"
      user   = var.task_user

      config {
        command = "/usr/bin/prometheus-alertmanager"
        args = [
          "--config.file=${NOMAD_TASK_DIR}/alertmanager.yml",
          "--storage.path=${var.data_dir}/alertmanager",
          "--web.listen-address=127.0.0.1:${NOMAD_PORT_alertmanager}",
          # One instance: no gossip with peers.
          "--cluster.listen-address=",
          "--log.level=warn",
        ]
      }

      template {
        data            = file("prometheus/alertmanager.yml")
        destination     = "local/alertmanager.yml"
        left_delimiter  = "[[nomad:"
        right_delimiter = ":nomad]]"
        change_mode     = "signal"
        change_signal   = "SIGHUP"
      }

      resources {
        cpu    = 50
        memory = 64
      }
    }
  }
}
