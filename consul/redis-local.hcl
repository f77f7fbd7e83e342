# Redis instances of the local stack as Consul services. Each instance is
# registered twice, as `redis-primary` and as `redis-replica`, and a script
# check (`redis-role-watch check`, on PATH) lets only the registration that matches
# its current role pass. After a Sentinel failover the roles swap within a
# check interval and discovery follows without anyone re-registering.
#
# Checks start critical (Consul's default), so a name is never served before
# its role has been seen. The timeout leaves Python room to start on a busy
# machine (0.2-0.4 s measured, more under load; a timed-out check is
# critical).
#
# Consul's ACLs are on: each registration carries the agent's token (policy
# redis-services). @CONSUL_AGENT_TOKEN@ is a placeholder: scripts/up writes
# this file, with the token from $COUNTER_STATE/secrets, to
# $COUNTER_STATE/etc/consul.d/ (0600); the repo's copy holds no secret.

# 127.0.0.1:6380 (redis/primary.conf): the primary at start.
services {
  id      = "redis-primary-6380"
  name    = "redis-primary"
  address = "127.0.0.1"
  port    = 6380
  token   = "@CONSUL_AGENT_TOKEN@"
  check {
    id       = "redis-primary-6380-role"
    name     = "Redis role is primary"
    args     = ["redis-role-watch", "check", "127.0.0.1", "6380", "primary"]
    interval = "1s"
    timeout  = "3s"
  }
}

services {
  id      = "redis-replica-6380"
  name    = "redis-replica"
  address = "127.0.0.1"
  port    = 6380
  token   = "@CONSUL_AGENT_TOKEN@"
  check {
    id       = "redis-replica-6380-role"
    name     = "Redis role is replica, link up"
    args     = ["redis-role-watch", "check", "127.0.0.1", "6380", "replica"]
    interval = "1s"
    timeout  = "3s"
  }
}

# 127.0.0.1:6381 (redis/replica.conf): the replica at start.
services {
  id      = "redis-primary-6381"
  name    = "redis-primary"
  address = "127.0.0.1"
  port    = 6381
  token   = "@CONSUL_AGENT_TOKEN@"
  check {
    id       = "redis-primary-6381-role"
    name     = "Redis role is primary"
    args     = ["redis-role-watch", "check", "127.0.0.1", "6381", "primary"]
    interval = "1s"
    timeout  = "3s"
  }
}

services {
  id      = "redis-replica-6381"
  name    = "redis-replica"
  address = "127.0.0.1"
  port    = 6381
  token   = "@CONSUL_AGENT_TOKEN@"
  check {
    id       = "redis-replica-6381-role"
    name     = "Redis role is replica, link up"
    args     = ["redis-role-watch", "check", "127.0.0.1", "6381", "replica"]
    interval = "1s"
    timeout  = "3s"
  }
}
