"""Takes one client host out of a cluster while it serves (scripts/deploy
remove-host -i INVENTORY HOST): the floating gateway address leaves it, its
allocations drain to the other hosts (the jobs sized to the hosts that
stay), its Redis leaves discovery and hands a primary role over, every other
Sentinel forgets it, its agents leave Consul and Nomad and its units stop.
Then delete the host from the inventory. Through the cluster's APIs and SSH,
from the operator's machine.
"""

import argparse
import sys
import time
import types

from . import client, common, jobs, target
from .redis import RedisError

DRAIN_DEADLINE_S = 120


def log(msg):
    common.log(f"remove-host: {msg}")


def until(what, predicate, timeout):
    common.until(what, predicate, timeout, 1, (OSError, RedisError, client.ApiError))


def drain(t, host):
    """The host stops taking work, the jobs are sized to the hosts that stay,
    and its allocations move (each replacement healthy before the next
    moves: the jobs' migrate settings)."""
    nomad = t.nomad(avoid=[host])
    node = next((n["ID"] for n in nomad.get("/v1/nodes") if n["Name"] == host), None)
    if node is None:
        log(f"{host} has no Nomad node; nothing to drain")
        return None
    nomad.post(f"/v1/node/{node}/eligibility", {"Eligibility": "ineligible"})
    # web runs one instance per host: with one host fewer, one instance fewer.
    jobs.deploy(t, types.SimpleNamespace(jobs=[], vars_dir=None, artifact=[], artifact_url="", keep_artifacts=True,
                                         set=[], clients=len(t.hosts) - 1, timeout=300, detach=False))
    nomad.post(f"/v1/node/{node}/drain", {"DrainSpec": {"Deadline": DRAIN_DEADLINE_S * 10**9,
                                                        "IgnoreSystemJobs": False}, "MarkEligible": False})
    log(f"draining {host}")
    until(f"{host}'s allocations to stop", lambda: not [a for a in nomad.get(f"/v1/node/{node}/allocations")
                                                      if a["ClientStatus"] == "running"], DRAIN_DEADLINE_S + 30)
    return node


def redis_out(t, host):
    """Its Redis leaves discovery: first the registration on the previous
    host's agent (the ring of consul/redis.hcl.j2; its own agent still names
    it, so nothing changes for the services yet), then its own; a moment for
    the batches already sent, then a primary hands its role over (web-inc
    holds new increments meanwhile). Then Redis and Sentinel stop."""
    names = list(t.hosts)
    previous = names[names.index(host) - 1]
    addr = t.hosts[host].addr
    with t.redis(addr) as r:
        was_primary = r.call("ROLE")[0] == "master"
    for agent in (previous, host):
        api = t.consul(host=agent)
        for role in ("primary", "replica"):
            api.call("PUT", f"/v1/agent/service/maintenance/redis-{role}-{host}",
                     params={"enable": "true", "reason": "remove-host"}, ok=(200, 404))
    if was_primary:
        time.sleep(0.2)
        log(f"{host} holds the primary: SENTINEL FAILOVER")
        with t.sentinel(addr) as s:
            s.call("SENTINEL", "FAILOVER", "counter")
        until(f"{host}'s Redis to become a replica", lambda: t.redis(addr).call("ROLE")[0] == "slave", 30)
    # Reads follow Consul with blocking queries: a second is plenty for every
    # service to stop reading from this host before it stops.
    time.sleep(1)
    t.ssh(host, "systemctl disable --now counter-sentinel.service counter-redis@primary.service "
                "counter-redis@replica.service 2>/dev/null || true")


def sentinels_forget(t, host):
    """Each remaining Sentinel in turn forgets every replica and Sentinel it
    knew and rediscovers those still there (Redis' documented way to remove
    a Sentinel or a replica), seeing all of them again before the next."""
    others = [h for h in t.hosts if h != host]
    for h in others:
        sentinel = t.sentinel(t.hosts[h].addr)
        sentinel.call("SENTINEL", "RESET", "counter")

        def sees_all(sentinel=sentinel):
            info = sentinel.call("SENTINEL", "MASTER", "counter")
            fields = dict(zip(info[::2], info[1::2]))
            return int(fields["num-other-sentinels"]) == int(fields["num-slaves"]) == len(others) - 1
        until(f"the Sentinel on {h} to see the others again", sees_all, 60)
        sentinel.close()


def main():
    p = argparse.ArgumentParser(prog="scripts/deploy remove-host", description=__doc__.split("\n\n")[0])
    p.add_argument("--inventory", "-i", required=True)
    p.add_argument("host")
    args = p.parse_args()
    t = target.cluster(args.inventory)
    if args.host not in t.hosts or args.host in t.servers:
        sys.exit(f"error: remove-host takes a client of the inventory that is not a server (a server is replaced, "
                 f"not removed: docs/deploy.md); got '{args.host}'")
    if t.gateway_vip:
        # First, so the address moves at once (a stopping keepalived hands it
        # over) while the host's Traefik still answers what it holds.
        t.ssh(args.host, "systemctl disable --now keepalived.service")
    node = drain(t, args.host)
    redis_out(t, args.host)
    sentinels_forget(t, args.host)
    t.ssh(args.host, "systemctl disable --now nomad.service")
    t.consul(host=args.host).call("PUT", "/v1/agent/leave", ok=(200, 403, 500))
    t.ssh(args.host, "systemctl disable --now consul.service counter-redis-role-watch.service")
    if node:
        t.nomad(avoid=[args.host]).post(f"/v1/node/{node}/purge")
    log(f"{args.host} is out of the cluster: delete it from {args.inventory}")


if __name__ == "__main__":
    main()
