"""A rolling reboot of a cluster's hosts, one at a time, under load and
without a failed request (scripts/deploy reboot -i INVENTORY [HOST...]): what
an operator does for a kernel update. For each host in turn:

  1. out of rotation: its gateway leaves the clients' list (--rotation FILE:
     the load of scripts/chaos reads it; in production, your load balancer
     or DNS), and the floating gateway address leaves it (keepalived stops)
  2. its Redis out of discovery, a primary's role handed over (SENTINEL
     FAILOVER; web-inc holds the increments of those two seconds)
  3. its allocations drained: each deregistered before it stops, the
     gateway last
  4. rebooted (systemctl reboot), and waited for: every unit active, a
     Consul member, a ready Nomad node again
  5. back: allocations placed on it again, its Redis in discovery once it is
     a replica with its link up, keepalived running, back in rotation

Servers last, one at a time, so Raft never loses two voters at once.
"""

import argparse
import os
import time

from . import client, target
from .common import die, log
from .drain import drain, redis_out, registrations, undrain, until

ROTATION_ENV = "COUNTER_ROTATION"


def booted_at(t, host):
    """When the host's PID 1 started (a reboot changes it; a test machine
    shares its kernel with this host, so its boot id would not)."""
    return t.ssh(host, "ps -o lstart= -p 1", timeout=10).stdout.strip()


def out_of_rotation(rotation, gateway, out):
    """The clients' list of gateways to avoid (one URL a line)."""
    if not rotation:
        return
    lines = set(open(rotation).read().split()) if os.path.exists(rotation) else set()
    lines = (lines | {gateway}) if out else (lines - {gateway})
    with open(f"{rotation}.tmp", "w") as f:
        f.write("".join(f"{g}\n" for g in sorted(lines)))
    os.replace(f"{rotation}.tmp", rotation)


def units_active(t, host, timeout=10):
    """Whether every Counter unit of HOST runs (Sentinel: on a server)."""
    units = "consul nomad counter-redis-role-watch 'counter-redis@*'" + (
        " counter-sentinel" if host in t.servers else "")
    return set(t.ssh(host, f"systemctl is-active {units}", check=False, timeout=timeout).stdout.split()) == {"active"}


def back(t, host):
    if not units_active(t, host):
        return False
    members = t.consul(avoid=[host]).get("/v1/agent/members")
    return any(m["Name"] == host and m["Status"] == 1 for m in members) and any(
        n["Name"] == host and n["Status"] == "ready" for n in t.nomad(avoid=[host]).get("/v1/nodes"))


def replica_in_sync(t, host):
    with t.redis(t.hosts[host].addr) as r:
        info = r.info()
    return info.get("role") == "slave" and info.get("master_link_status") == "up"


def out_of_service(t, host, rotation):
    """Steps 1-3: out of rotation, its Redis out of discovery (a primary's
    role handed over), its allocations drained."""
    out_of_rotation(rotation, t.gateway(host), True)
    time.sleep(1)  # the requests under way to it finish
    if t.gateway_vip:
        t.ssh(host, "systemctl stop keepalived.service")
    redis_out(t, host)
    drain(t, host)


def back_in_service(t, host, rotation):
    """Step 5, once its units run again: allocations back, its Redis in
    discovery once in sync, the floating address may come, back in rotation."""
    started = time.monotonic()
    until(f"{host}'s units, Consul member and Nomad node", lambda: back(t, host), 180)
    agents = time.monotonic()
    undrain(t, host)
    log(f"{host}: agents back in {agents - started:.0f}s, its allocations running "
        f"{time.monotonic() - agents:.0f}s later")
    until(f"{host}'s Redis in sync as a replica", lambda: replica_in_sync(t, host), 60)
    registrations(t, host, False)
    if t.gateway_vip:
        t.ssh(host, "systemctl start keepalived.service")
    out_of_rotation(rotation, t.gateway(host), False)


def reboot(t, host, rotation=None):
    started = time.monotonic()
    out_of_service(t, host, rotation)
    before = booted_at(t, host)
    log(f"{host}: rebooting")
    t.ssh(host, "systemctl reboot", check=False, timeout=10)
    until(f"{host} to reboot", lambda: booted_at(t, host) != before, 180)
    back_in_service(t, host, rotation)
    log(f"{host}: back in {time.monotonic() - started:.0f}s")


def order(t, hosts):
    """The servers last (the Raft leaders' hosts last of all), the others first."""
    leaders = set()
    for api in (t.consul(), t.nomad()):
        leaders.add(t.host_of(str(api.get("/v1/status/leader")).rsplit(":", 1)[0]))
    return sorted(hosts, key=lambda h: (h in t.servers, h in leaders, list(t.hosts).index(h)))


def main():
    p = argparse.ArgumentParser(prog="scripts/deploy reboot", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--inventory", "-i", required=True)
    p.add_argument("--rotation", default=os.environ.get(ROTATION_ENV),
                   help=f"a file listing the gateways clients must avoid (default: ${ROTATION_ENV})")
    p.add_argument("hosts", nargs="*", help="default: every host")
    args = p.parse_args()
    t = target.cluster(args.inventory)
    unknown = set(args.hosts) - set(t.hosts)
    if unknown:
        die(f"no host {', '.join(sorted(unknown))} in {args.inventory}")
    try:
        for host in order(t, args.hosts or list(t.hosts)):
            reboot(t, host, args.rotation)
    except client.ApiError as err:
        die(str(err))


if __name__ == "__main__":
    main()
