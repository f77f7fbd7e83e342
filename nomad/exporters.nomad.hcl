# exporters: what Prometheus (nomad/prometheus.nomad.hcl) reads on every
# machine that has no /metrics of its own: the host (Debian's
# prometheus-node-exporter: CPU, memory, disks, network) and its Redis
# (prometheus-redis-exporter, asked by Prometheus for one node at a time:
# /scrape?target=redis://ADDR:PORT). A system job: one of each per client,
# on the client's own address (127.0.0.1 on the local stack).
#   nomad job run -var-file=$COUNTER_STATE/jobs/exporters.vars.hcl nomad/exporters.nomad.hcl

variable "task_user" {
  type        = string
  description = "The unprivileged system user of this job's tasks, its own (counter-exporters; counter_task_users in deploy/group_vars/all/settings.yml). An empty string runs the tasks as the Nomad agent's own user (scripts/up when not run as root)."
}

variable "task_uid" {
  type        = number
  description = "The uid of task_user (counter_task_uids in deploy/group_vars/all/settings.yml; the gid of its group too): the Redis password's file is rendered owned by it, readable by it alone. -1 leaves it the agent's (with an empty task_user)."
}

variable "redis_ports" {
  type        = string
  description = "The ports of this machine's Redis nodes and its Sentinel, comma-separated (the redis exporter's password file names each; the metrics user has the same password on both): 6380,6381,26380 on the local stack."
  default     = "6380,26380"
}

variable "tls" {
  type        = bool
  description = "A cluster's: both exporters serve HTTPS (/etc/counter/tls/exporters.pem, named exporters.counter) to clients with a certificate of the services CA alone (Prometheus'), and the redis exporter reaches Redis over TLS (the Redis CA)."
  default     = false
}

variable "gateway_address" {
  type        = string
  description = "A cluster's floating gateway address (counter_gateway_vip of its inventory), if it has one: the gateway-address task reports whether this machine holds it. Empty (the local stack): no such task."
  default     = ""
}

locals {
  tls_dir = "/etc/counter/tls"
  # The textfile tasks: each runs prometheus/SCRIPT ARG OUT_FILE every
  # EVERY_S seconds; one whose ARG is empty does not run.
  textfile_tasks = {
    # When each certificate of the machine expires (the CAs it trusts, its
    # own leaves): the CertificateExpiresSoon alert.
    "certificates" = { script = "certificate-expiry.sh", arg = local.tls_dir, every_s = 300 }
    # Whether the machine holds the floating gateway address: the
    # dashboard's Machines table names the holder.
    "gateway-address" = { script = "gateway-address.sh", arg = var.gateway_address, every_s = 2 }
  }
}

job "exporters" {
  type = "system"

  update {
    max_parallel = 1
  }

  group "exporters" {
    network {
      port "node" {
        static = 9100
      }
      port "redis" {
        static = 9121
      }
    }

    # Over TLS the exporters want a client certificate, which Consul's
    # checks cannot present: a TCP check then.
    dynamic "service" {
      for_each = {
        "node-exporter"  = { port = "node", path = "/" }
        "redis-exporter" = { port = "redis", path = "/health" }
      }
      content {
        name     = service.key
        provider = "consul"
        port     = service.value.port
        check {
          type     = var.tls ? "tcp" : "http"
          path     = var.tls ? "" : service.value.path
          interval = "10s"
          timeout  = "2s"
        }
      }
    }

    task "node" {
      driver = "raw_exec"
      user   = var.task_user

      config {
        command = "/usr/bin/prometheus-node-exporter"
        args = concat([
          "--web.listen-address=${NOMAD_IP_node}:${NOMAD_PORT_node}",
          # What the alerts and the dashboard read; the rest costs CPU.
          "--collector.disable-defaults",
          "--collector.cpu", "--collector.meminfo", "--collector.loadavg", "--collector.filesystem",
          "--collector.netdev", "--collector.diskstats", "--collector.uname", "--collector.time",
          # The certificates' expiry, which the certificates task writes.
          "--collector.textfile", "--collector.textfile.directory=${NOMAD_ALLOC_DIR}/textfile",
          # Debian's default types less overlay (a container's root, such as
          # the test machines': the disk the machine has), plus tmpfs (two
          # for every allocation's secrets and private dirs: noise).
          "--collector.filesystem.fs-types-exclude=^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tmpfs|tracefs)$",
          "--log.level=warn",
        ], var.tls ? ["--web.config.file=${NOMAD_TASK_DIR}/web.yml"] : [])
      }

      # Its HTTPS, for clients of the services CA only (Prometheus').
      dynamic "template" {
        for_each = var.tls ? ["web.yml"] : []
        content {
          destination = "local/${template.value}"
          change_mode = "restart"
          data        = <<-EOT
            tls_server_config:
              cert_file: ${local.tls_dir}/exporters.pem
              key_file: ${local.tls_dir}/exporters-key.pem
              client_ca_file: ${local.tls_dir}/services-ca.pem
              client_auth_type: RequireAndVerifyClientCert
          EOT
        }
      }

      resources {
        cpu    = 50
        memory = 64
      }
    }

    # Counter's own metrics for the node exporter's textfile collector: a
    # task each, running its script of prometheus/ in a loop, the output in
    # the allocation's textfile/ (local.textfile_tasks says which and how
    # often). The sleep in the background: `wait` returns at Nomad's stop
    # signal, so the task stops at once, not at the kill timeout.
    dynamic "task" {
      for_each = { for name, t in local.textfile_tasks : name => t if t.arg != "" }
      labels   = [task.key]
      content {
        driver = "raw_exec"
        user   = var.task_user

        config {
          command = "/bin/sh"
          args = ["-c", join(" ", [
            "trap 'exit 0' INT TERM;",
            "while :; do /bin/sh ${NOMAD_TASK_DIR}/${task.value.script} ${task.value.arg}",
            "${NOMAD_ALLOC_DIR}/textfile/${task.key}.prom; sleep ${task.value.every_s} & wait $!; done",
          ])]
        }

        template {
          data            = file("prometheus/${task.value.script}")
          destination     = "local/${task.value.script}"
          left_delimiter  = "[[nomad:"
          right_delimiter = ":nomad]]"
          change_mode     = "restart"
        }

        resources {
          cpu    = 20
          memory = 32
        }
      }
    }

    task "redis" {
      driver = "raw_exec"
      user   = var.task_user

      config {
        command = "/usr/bin/prometheus-redis-exporter"
        args = concat([
          "-web.listen-address=${NOMAD_IP_redis}:${NOMAD_PORT_redis}",
          # No node of its own: each scrape names one (?target=).
          "-redis.addr=",
          "-redis.user=metrics",
          "-redis.password-file=${NOMAD_SECRETS_DIR}/redis-passwords.json",
          # Under the redis scrape's timeout (2 s, prometheus/prometheus.yml),
          # so a node that stopped answering is reported as redis_up 0, not
          # as a failed scrape.
          "-connection-timeout=1s",
          "-log-format=txt",
          ], var.tls ? [
          "-tls-ca-cert-file=${local.tls_dir}/redis-ca.pem",
          "-tls-server-cert-file=${local.tls_dir}/exporters.pem",
          "-tls-server-key-file=${local.tls_dir}/exporters-key.pem",
          "-tls-server-ca-cert-file=${local.tls_dir}/services-ca.pem",
        ] : [])
      }

      # The metrics user's password (Redis ACL user `metrics`: INFO, PING,
      # CONFIG GET, SLOWLOG and LATENCY only; redis/users.acl.j2), from the
      # job's Nomad Variable, as the exporter's password file: a JSON map of
      # each Redis node this machine runs to it, in the secrets dir, readable
      # by the task's user alone (0400, owned by task_uid). Not REDIS_PASSWORD:
      # no process's environment holds a secret. A ?target= the map does not
      # name gets no password.
      template {
        destination = "secrets/redis-passwords.json"
        perms       = "0400"
        uid         = var.task_uid
        gid         = var.task_uid
        change_mode = "restart"
        data = join("", [
          "{{ with nomadVar \"nomad/jobs/exporters\" }}{",
          join(", ", [for port in split(",", var.redis_ports) :
          "\"${var.tls ? "rediss" : "redis"}://{{ env \"NOMAD_IP_redis\" }}:${trimspace(port)}\": {{ .redis_password | toJSON }}"]),
          "}{{ end }}\n",
        ])
      }

      resources {
        cpu    = 50
        memory = 64
      }
    }
  }
}
