"""The Redis role watch: which Redis instance is the primary, told to Consul
the moment it changes (counter-redis-role-watch.service, on every host of a
cluster and on the local stack).

Every Redis instance is registered in Consul twice, as `redis-primary` and
`redis-replica` (consul/redis.hcl.j2), each with a TTL check; this daemon
looks at every watched node every 0.2 s over one kept connection and sets
the two checks of the local agent the moment a verdict changes (and every
second otherwise, well inside the TTL), so the healthy `redis-primary`
always names the current primary, whatever Sentinel has done. If it stops,
its checks expire and turn critical within the TTL. The rules:

  primary  passes when the node says `role:master` and, where it has a write
           guard (min-replicas-to-write), at least one replica is in sync:
           a primary that would refuse every write (NOREPLICAS), such as an
           old primary restarted after a failover and not yet turned into a
           replica by Sentinel, must not be discovered as a second one.
  replica  passes when the node says `role:slave` and its link to the
           master is up, or went down less than REPLICA_LEASE_S (5 s) ago:
           when the primary dies its replicas hold every acknowledged write
           (web-inc WAITs for them) and keep serving reads through the
           failover instead of all failing at once (docs/services.md,
           "Reads during a failover"). Also, for the same lease, a replica
           this watch saw promoted whose replicas are not in sync yet: the
           other replica may be loading a full sync (LOADING) and the new
           primary is not named until one is in sync, so without it no node
           would serve reads for those seconds; the new primary holds every
           acknowledged write.

Settings from the environment (the unit's EnvironmentFile): REDIS_ROLE_WATCH
("NAME=HOST:PORT ..."), REDIS_USER and REDIS_PASSWORD (the `check` ACL user),
REDIS_TLS_CA (TLS, verified against that CA), CONSUL_HTTP_ADDR and
CONSUL_HTTP_TOKEN (the agent's). No secret is ever on a command line.
"""

import argparse
import os
import signal
import threading
import time

from . import client
from .redis import Redis, RedisError

# How long a replica whose master link went down still serves reads: the
# primary's own min-replicas-max-lag, so a read is never staler than the
# window in which the primary still accepts writes without that replica.
REPLICA_LEASE_S = float(os.environ.get("REPLICA_LEASE_S", "5"))
ROLES = ("primary", "replica")


def verdicts(where, info, promoted_s=None):
    """{role: (passing, reason)} for both registrations, from INFO replication;
    PROMOTED_S: how long ago this watch saw the node turn from replica to
    master (None: not seen)."""
    role = info.get("role", "")
    out = {}
    if role == "master":
        # Present only with a write guard (min-replicas-to-write).
        good = info.get("min_slaves_good_slaves")
        out["replica"] = (False, f"{where} is master, not replica")
        if good is not None and int(good) < 1:
            out["primary"] = (False, f"{where} is master without an in-sync replica "
                                     "(min_slaves_good_slaves:0): it would refuse writes")
            if promoted_s is not None and promoted_s < REPLICA_LEASE_S:
                out["replica"] = (True, f"{where} was promoted {promoted_s:.1f}s ago and its replicas are not in "
                                        f"sync yet: it serves reads (< {REPLICA_LEASE_S:g}s lease)")
        else:
            extra = f" with {good} in-sync replica(s)" if good is not None else ""
            out["primary"] = (True, f"{where} is master{extra}")
    elif role == "slave":
        out["primary"] = (False, f"{where} is slave, not primary")
        link = info.get("master_link_status", "unknown")
        if link == "up":
            out["replica"] = (True, f"{where} is a replica with its master link up")
        else:
            # -1: never synced since it started (no data to serve).
            down = int(info.get("master_link_down_since_seconds", "-1") or -1)
            if 0 <= down < REPLICA_LEASE_S:
                out["replica"] = (True, f"{where} is a replica, master link down {down}s "
                                        f"(< {REPLICA_LEASE_S:g}s lease)")
            else:
                out["replica"] = (False, f"{where} is a replica but its master link is "
                                         f"{link} (down {down}s)")
    else:
        reason = f"{where} answered INFO replication with role '{role}'"
        out = {r: (False, reason) for r in ROLES}
    return out


class Look:
    """Looks at one node: INFO replication, and when it was seen promoted."""

    def __init__(self, conn):
        self.conn, self.role, self.promoted_at = conn, None, None

    def __call__(self):
        """Verdicts for both roles; never raises."""
        try:
            info = self.conn.info()
        except (OSError, RedisError, ValueError) as err:
            self.conn.close()
            reason = f"{self.conn!r} does not answer: {err or type(err).__name__}"
            return {r: (False, reason) for r in ROLES}
        if self.role == "slave" and info.get("role") == "master":
            self.promoted_at = time.monotonic()
        elif info.get("role") != "master":
            self.promoted_at = None
        self.role = info.get("role")
        promoted_s = time.monotonic() - self.promoted_at if self.promoted_at else None
        try:
            return verdicts(repr(self.conn), info, promoted_s)
        except ValueError as err:
            return {r: (False, f"{self.conn!r}: {err}") for r in ROLES}


def look(conn):
    """Verdicts for both roles from one look at a node; never raises."""
    return Look(conn)()


def watch_node(name, conn, agent, interval, refresh, stop):
    """Looks at one node every INTERVAL; pushes its two checks on a change or
    every REFRESH."""
    pushed = {}  # check id -> ((passing, reason), when pushed)
    node = Look(conn)
    while not stop.is_set():
        started = time.monotonic()
        for role, (passing, reason) in node().items():
            check_id = f"redis-{role}-{name}-role"
            last = pushed.get(check_id)
            if last and last[0] == (passing, reason) and started - last[1] < refresh:
                continue
            status = "passing" if passing else "critical"
            try:
                agent.put(f"/v1/agent/check/update/{check_id}", {"Status": status, "Output": f"{status}: {reason}"})
            except client.ApiError as err:
                # The agent is restarting or the check is not registered yet:
                # try again next round, and say so once per state.
                if not last or last[0] != ("error", str(err)):
                    print(f"{check_id}: Consul agent refused the update: {err}", flush=True)
                    pushed[check_id] = (("error", str(err)), started)
                continue
            if not last or last[0] != (passing, reason):
                print(f"{check_id}: {status}: {reason}", flush=True)
            pushed[check_id] = ((passing, reason), started)
        stop.wait(max(0.0, interval - (time.monotonic() - started)))
    conn.close()


def parse_watch(spec):
    name, sep, addr = spec.partition("=")
    host, sep2, port = addr.rpartition(":")
    if not (sep and sep2 and name and host and port.isdigit()):
        raise argparse.ArgumentTypeError(f"'{spec}' is not NAME=HOST:PORT")
    return name, host, int(port)


def main():
    p = argparse.ArgumentParser(prog="python -m counterops.role_watch", description=__doc__.split("\n\n")[0])
    p.add_argument("--watch", action="append", type=parse_watch, metavar="NAME=HOST:PORT",
                   help="a node (default: $REDIS_ROLE_WATCH); its checks are redis-{primary,replica}-NAME-role")
    p.add_argument("--interval", type=float, default=0.2, help="seconds between looks at each node")
    p.add_argument("--refresh", type=float, default=1.0, help="push an unchanged verdict this often, inside the TTL")
    p.add_argument("--timeout", type=float, default=0.5, help="connect and reply timeout per look")
    args = p.parse_args()
    watch = args.watch or [parse_watch(s) for s in os.environ.get("REDIS_ROLE_WATCH", "").split()]
    if not watch:
        p.error("no node to watch: --watch NAME=HOST:PORT or REDIS_ROLE_WATCH")
    env = os.environ
    agent = client.consul(env.get("CONSUL_HTTP_ADDR", "http://127.0.0.1:8500"), env.get("CONSUL_HTTP_TOKEN"),
                          timeout=2, retries=0)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threads = []
    for name, host, port in watch:
        conn = Redis(host, port, env.get("REDIS_PASSWORD") or None, env.get("REDIS_USER") or None,
                     env.get("REDIS_TLS_CA") or None, timeout=args.timeout)
        threads.append(threading.Thread(target=watch_node, name=name, daemon=True,
                                        args=(name, conn, agent, args.interval, args.refresh, stop)))
        threads[-1].start()
    print(f"watching {', '.join(f'{n}={h}:{p}' for n, h, p in watch)} every {args.interval:g}s, "
          f"Consul agent {agent.base}", flush=True)
    while not stop.is_set():
        stop.wait(1)
    for thread in threads:
        thread.join(timeout=2)


if __name__ == "__main__":
    main()
