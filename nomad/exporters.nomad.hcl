# exporters: what Prometheus (nomad/prometheus.nomad.hcl) reads on every
# machine that has no /metrics of its own: the host (Debian's
# prometheus-node-exporter: CPU, memory, disks, network) and its Redis
# (prometheus-redis-exporter, asked by Prometheus for one node at a time:
# /scrape?target=redis://ADDR:PORT). A system job: one of each per client.
#   nomad job run -var-file=$COUNTER_STATE/jobs/exporters.vars.hcl nomad/exporters.nomad.hcl

variable "task_user" {
  type        = string
  description = "The unprivileged system user of this job's tasks, its own (counter-exporters; counter_task_users in deploy/group_vars/all/settings.yml). An empty string runs the tasks as the Nomad agent's own user (scripts/up when not run as root)."
}

variable "task_uid" {
  type        = number
  description = "The uid of task_user (counter_task_uids in deploy/group_vars/all/settings.yml; the gid of its group too): the Redis password's file is rendered owned by it, readable by it alone. -1 leaves it the agent's (with an empty task_user)."
}

variable "listen" {
  type        = string
  description = "The address the exporters listen on: 127.0.0.1 on the local stack."
  default     = "127.0.0.1"
}

variable "redis_ports" {
  type        = string
  description = "The ports of this machine's Redis nodes, comma-separated (the redis exporter's password file names each): 6380,6381 on the local stack."
  default     = "6380"
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

    service {
      name     = "node-exporter"
      provider = "consul"
      port     = "node"
      check {
        type     = "http"
        path     = "/"
        interval = "10s"
        timeout  = "2s"
      }
    }

    service {
      name     = "redis-exporter"
      provider = "consul"
      port     = "redis"
      check {
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "node" {
      driver = "raw_exec"
      user   = var.task_user

      config {
        command = "/usr/bin/prometheus-node-exporter"
        args = [
          "--web.listen-address=${var.listen}:${NOMAD_PORT_node}",
          # What the alerts and the dashboard read; the rest costs CPU.
          "--collector.disable-defaults",
          "--collector.cpu", "--collector.meminfo", "--collector.loadavg", "--collector.filesystem",
          "--collector.netdev", "--collector.diskstats", "--collector.uname", "--collector.time",
          "--log.level=warn",
        ]
      }

      resources {
        cpu    = 50
        memory = 64
      }
    }

    task "redis" {
      driver = "raw_exec"
      user   = var.task_user

      config {
        command = "/usr/bin/prometheus-redis-exporter"
        args = [
          "-web.listen-address=${var.listen}:${NOMAD_PORT_redis}",
          # No node of its own: each scrape names one (?target=).
          "-redis.addr=",
          "-redis.user=metrics",
          "-redis.password-file=${NOMAD_SECRETS_DIR}/redis-passwords.json",
          # Under the scrape timeout (4 s), so a node that stopped answering
          # is reported as redis_up 0, not as a failed scrape.
          "-connection-timeout=2s",
          "-log-format=txt",
        ]
      }

      # The metrics user's password (Redis ACL user `metrics`: INFO, PING,
      # CONFIG GET, SLOWLOG and LATENCY only; redis/users.acl.j2), from the
      # job's Nomad Variable, as the exporter's password file: a JSON map of
      # each Redis node this machine runs to it, in the secrets dir, readable
      # by the task's user alone (0400, owned by task_uid). Not REDIS_PASSWORD:
      # no process's environment holds a secret.
      template {
        destination = "secrets/redis-passwords.json"
        perms       = "0400"
        uid         = var.task_uid
        gid         = var.task_uid
        change_mode = "restart"
        data = join("", [
          "{{ with nomadVar \"nomad/jobs/exporters\" }}{",
          join(", ", [for port in split(",", var.redis_ports) :
          "\"redis://${var.listen}:${trimspace(port)}\": {{ .redis_password | toJSON }}"]),
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
