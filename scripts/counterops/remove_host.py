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

from . import target
from .common import log
from .drain import drain, redis_out, ring_partner, until


def sentinels_forget(t, host):
    """Each Sentinel (one per server) in turn forgets every replica and
    Sentinel it knew and rediscovers those still there (Redis' documented way
    to remove a replica), seeing all of them again before the next."""
    replicas = len(t.hosts) - 2  # the hosts that stay, but the primary
    for h in t.servers:
        sentinel = t.sentinel(t.hosts[h].addr)
        sentinel.call("SENTINEL", "RESET", "counter")

        def sees_all(sentinel=sentinel):
            info = sentinel.call("SENTINEL", "MASTER", "counter")
            fields = dict(zip(info[::2], info[1::2]))
            return (int(fields["num-other-sentinels"]), int(fields["num-slaves"])) == (len(t.servers) - 1, replicas)
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
    node = drain(t, args.host, clients=len(t.hosts) - 1)
    redis_out(t, args.host)
    t.ssh(args.host, "systemctl disable --now counter-redis@primary.service counter-redis@replica.service "
                     "2>/dev/null || true")
    sentinels_forget(t, args.host)
    t.ssh(args.host, "systemctl disable --now nomad.service")
    t.consul(host=args.host).call("PUT", "/v1/agent/leave", ok=(200, 403, 500))
    t.ssh(args.host, "systemctl disable --now consul.service counter-redis-role-watch.service")
    # Its Redis stays registered by its ring partner's agent (in maintenance,
    # so no service reads from it) until that host's next deploy; without
    # this, its targets and RedisDown would fire until then.
    partner = t.consul(host=ring_partner(t, args.host))
    for role in ("primary", "replica"):
        partner.call("PUT", f"/v1/agent/service/deregister/redis-{role}-{args.host}", ok=(200, 404))
    if node:
        t.nomad(avoid=[args.host]).post(f"/v1/node/{node}/purge")
    log(f"{args.host} is out of the cluster: delete it from {args.inventory}")


if __name__ == "__main__":
    main()
