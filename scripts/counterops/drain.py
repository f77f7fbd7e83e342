"""Taking a host out of service, and back, without a failed request: the
steps remove-host and the rolling reboot share. Through the cluster's APIs
and SSH, from the operator's machine."""

import subprocess
import time
import types

from . import client, common, jobs, target
from .common import log
from .redis import RedisError

DRAIN_DEADLINE_S = 120


def until(what, predicate, timeout):
    return common.until(what, predicate, timeout, 1, (OSError, RedisError, client.ApiError, KeyError,
                                                      target.TargetError, subprocess.SubprocessError))


def node_of(t, host):
    nomad = t.nomad(avoid=[host])
    return next((n["ID"] for n in nomad.get("/v1/nodes") if n["Name"] == host), None)


def drain(t, host, clients=None):
    """The host stops taking work and its allocations stop (service jobs
    first, each instance deregistered before it stops; system jobs last);
    with CLIENTS, the jobs are sized to that many hosts first (web runs one a
    host). Returns its Nomad node's ID (None: it has none)."""
    nomad = t.nomad(avoid=[host])
    node = node_of(t, host)
    if node is None:
        log(f"{host} has no Nomad node; nothing to drain")
        return None
    nomad.post(f"/v1/node/{node}/eligibility", {"Eligibility": "ineligible"})
    if clients:
        jobs.deploy(t, types.SimpleNamespace(jobs=[], vars_dir=None, artifact=[], artifact_url="",
                                             keep_artifacts=True, set=[], clients=clients, timeout=300,
                                             detach=False))
    nomad.post(f"/v1/node/{node}/drain", {"DrainSpec": {"Deadline": DRAIN_DEADLINE_S * 10**9,
                                                        "IgnoreSystemJobs": False}, "MarkEligible": False})
    log(f"draining {host}")
    until(f"{host}'s allocations to stop", lambda: not [a for a in nomad.get(f"/v1/node/{node}/allocations")
                                                      if a["ClientStatus"] == "running"], DRAIN_DEADLINE_S + 30)
    return node


def undrain(t, host):
    """The host takes work again: Nomad places what it lacks there (web's
    instance of this host, the gateway)."""
    nomad, node = t.nomad(avoid=[host]), node_of(t, host)
    nomad.post(f"/v1/node/{node}/drain", {"DrainSpec": None, "MarkEligible": True})
    until(f"traefik and web running on {host}", lambda: {"traefik", "web"} <= {
        a["JobID"] for a in nomad.get(f"/v1/node/{node}/allocations") if a["ClientStatus"] == "running"}, 180)


def ring_partner(t, host):
    """The host whose agent registers HOST's Redis besides its own."""
    names = list(t.hosts)
    return names[names.index(host) - 1]


def registrations(t, host, enable):
    """Its Redis in or out of discovery, on both agents that register it (its
    own and the previous host's in the ring of consul/redis.hcl.j2): the
    previous one's first when it leaves (its own still names it, so nothing
    changes for the services yet), its own first when it comes back."""
    agents = [ring_partner(t, host), host]
    for agent in agents if enable else reversed(agents):
        api = t.consul(host=agent)
        for role in ("primary", "replica"):
            api.call("PUT", f"/v1/agent/service/maintenance/redis-{role}-{host}",
                     params={"enable": str(enable).lower(), "reason": "counter maintenance"}, ok=(200, 404))


def redis_out(t, host):
    """Its Redis leaves discovery; a moment for the batches already sent, then
    a primary hands its role over (web-inc holds new increments meanwhile),
    and the services stop reading from it."""
    addr = t.hosts[host].addr
    with t.redis(addr) as r:
        was_primary = r.call("ROLE")[0] == "master"
    registrations(t, host, True)
    if was_primary:
        time.sleep(0.2)
        log(f"{host} holds the primary: SENTINEL FAILOVER")
        sentinel = next(s for s in t.servers if s != host)
        with t.sentinel(t.hosts[sentinel].addr) as s:
            s.call("SENTINEL", "FAILOVER", "counter")
        until(f"{host}'s Redis to become a replica", lambda: t.redis(addr).call("ROLE")[0] == "slave", 30)
    # Reads follow Consul with blocking queries: a second is plenty for every
    # service to stop reading from this host.
    time.sleep(1)
