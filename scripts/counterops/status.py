"""scripts/status: one table per concern, every row a machine or an
allocation, for the local stack and the cluster alike. Sources: Nomad (nodes,
allocations), Consul (members, service health), Redis (INFO replication) and
Sentinel, and the /metrics of every web, web-inc and Traefik allocation, read
twice INTERVAL seconds apart for request and error rates. Locally also the
processes scripts/up started. Exits 1 when something expected is down.
"""

import argparse
import re
import sys
import time
import urllib.request
from pathlib import Path

from . import client, supervisor, target
from .redis import RedisError

JOBS = ["traefik", "web", "web-inc"]
SENTINEL_PORT = 26380
SENTINEL_NAME = "counter"
ok = True


def bad():
    global ok
    ok = False


def table(header, rows):
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def show_processes():
    pids = {c.name: supervisor.pid(c.name) for c in supervisor.COMPONENTS}
    table(["PROCESS", "PID", "STATE"], [[n, p or "-", "running" if p else "stopped"] for n, p in pids.items()])
    if not all(pids.values()):
        bad()
    print()


def allocations(nomad, jobs):
    """The running allocations of JOBS, by job, machine and ID."""
    return sorted((a for a in nomad.get("/v1/allocations") if a["JobID"] in jobs and a["ClientStatus"] == "running"),
                  key=lambda a: (a["JobID"], a.get("NodeName", ""), a["ID"]))


def try_get(fn, what, default):
    try:
        return fn()
    except client.ApiError as e:
        print(f"{what}: {e}")
        bad()
        return default


# ---------------------------------------------------------------- metrics

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(url):
    """{(name, labels tuple): value} of a Prometheus text page; None if unreachable."""
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            text = r.read().decode(errors="replace")
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if not m or line.startswith("#"):
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        out[(m.group(1), tuple(sorted(LABEL.findall(m.group(2) or ""))))] = value
    return out


def requests_and_errors(job, samples):
    """(requests, 5xx responses) so far: the services' routes of the public
    contract, Traefik's public entrypoint."""
    total = errors = 0.0
    for (name, labels), value in samples.items():
        labels = dict(labels)
        if job == "traefik":
            if name != "traefik_entrypoint_requests_total" or labels.get("entrypoint") != "web":
                continue
            code = labels.get("code", "")
        else:
            if name not in ("counter_http_requests_total", "counter_http_requests"):
                continue
            if labels.get("route") not in ("/", "/inc", "other"):
                continue  # health checks and scrapes are not traffic
            code = labels.get("status", "")
        total += value
        if code.startswith("5"):
            errors += value
    return total, errors


# ---------------------------------------------------------------- redis

def redis_info(t, addr, port):
    try:
        with t.redis(addr, port) as r:
            return r.info()
    except (OSError, RedisError):
        return None


def sentinel_call(t, addr, *args):
    try:
        with t.sentinel(addr) as s:
            return s.call(*args)
    except (OSError, RedisError):
        return None


def sentinel_primary(t, addr):
    reply = sentinel_call(t, addr, "SENTINEL", "get-master-addr-by-name", SENTINEL_NAME)
    return ":".join(reply[:2]) if reply else None


# The timers counter-sentinel.service sets after every start
# (counter-sentinel-timers NAME MS ...): read from the unit, so the two agree.
SENTINEL_UNIT = Path(__file__).resolve().parents[2] / "systemd/counter-sentinel.service"


def unit_sentinel_timers():
    """{"ping-period": "250", ...} as the unit's ExecStartPost sets them."""
    for line in SENTINEL_UNIT.read_text().splitlines():
        if line.startswith("ExecStartPost=") and "counter-sentinel-timers" in line:
            words = line.split()[2:]  # after the program and the config file
            return dict(zip(words[::2], words[1::2]))
    return {}


def sentinel_timers(t, addr, names):
    """The values of NAMES in the Sentinel at ADDR (SENTINEL DEBUG), or None."""
    reply = sentinel_call(t, addr, "SENTINEL", "DEBUG")
    if reply is None:
        return None
    values = {str(k).lower(): str(v) for k, v in zip(reply[::2], reply[1::2])}
    return {n: values.get(n, "?") for n in names}


def describe_sentinel_timers(t, addrs):
    """One phrase: the timers every Sentinel runs with, or which differ from the unit's."""
    want = unit_sentinel_timers()
    if not want:
        return ""
    wrong, read = [], 0
    for a in addrs:
        got = sentinel_timers(t, a, want)
        read += got is not None
        if got is not None and got != want:
            wrong.append(f"{a} runs " + ", ".join(f"{n} {v}" for n, v in got.items()))
    if not read:  # no Sentinel told its timers: claim none
        return ""
    if wrong:
        bad()
        return "; " + "; ".join(wrong) + " (the unit sets " + ", ".join(f"{n} {v}" for n, v in want.items()) + \
            ": restart counter-sentinel there)"
    return "; " + ", ".join(f"{n} {v} ms" for n, v in want.items())


def redis_nodes(consul):
    """{(addr, port): node name} of every Redis registered in Consul."""
    nodes = {}
    for name in ("redis-primary", "redis-replica"):
        for e in consul.get(f"/v1/health/service/{name}"):
            addr = e["Service"]["Address"] or e["Node"]["Address"]
            # Each instance is registered by its own host's agent and by a
            # neighbour's (a ring): the host is the one whose agent's id it carries.
            own = e["Service"]["ID"].endswith("-" + e["Node"]["Node"])
            if own or (addr, e["Service"]["Port"]) not in nodes:
                nodes[(addr, e["Service"]["Port"])] = e["Node"]["Node"]
    return nodes


def redis_rows(t, consul):
    nodes = try_get(lambda: redis_nodes(consul), "consul", {})
    infos = {key: redis_info(t, *key) for key in sorted(nodes)}
    # Lag is measured against the primary's own view of each replica.
    primary_offset, replica_lag = None, {}
    for info in infos.values():
        if info and info.get("role") == "master":
            primary_offset = int(info.get("master_repl_offset", 0))
            for k, v in info.items():
                if re.fullmatch(r"slave\d+", k):
                    f = dict(kv.split("=", 1) for kv in v.split(","))
                    replica_lag[(f["ip"], int(f["port"]))] = (primary_offset - int(f["offset"]), f["lag"], f["state"])
    rows, per_node = [], {}
    for (addr, port), info in infos.items():
        node = nodes[(addr, port)]
        if info is None:
            rows.append([node, f"{addr}:{port}", "down", "-", "-"])
            per_node[node] = "down"
            bad()
            continue
        role = "primary" if info.get("role") == "master" else "replica"
        if role == "primary":
            detail = f"replicas {info.get('connected_slaves', '?')}, offset {primary_offset}"
            summary = f"primary ({info.get('connected_slaves', '?')} replicas)"
            lag = "-"
        else:
            link = info.get("master_link_status", "?")
            seen = replica_lag.get((addr, port))
            if seen:
                lag = f"{seen[0]}B {seen[1]}s"
            else:
                lag = "unknown"
            detail = f"link {link} to {info.get('master_host', '?')}:{info.get('master_port', '?')}"
            summary = f"replica lag {lag}" if link == "up" else f"replica link {link}"
            if link != "up":
                bad()
        rows.append([node, f"{addr}:{port}", role, lag, detail])
        per_node[node] = (per_node[node] + ", " if node in per_node else "") + summary
    return rows, per_node


# ---------------------------------------------------------------- main

def main():
    p = argparse.ArgumentParser(prog="scripts/status", description=__doc__.split("\n\n")[0])
    target.add_arguments(p)
    p.add_argument("--interval", type=float, default=2.0, help="seconds between the two reads of /metrics")
    args = p.parse_args()
    t = target.from_args(args)
    if t.kind == "local":
        show_processes()
    nomad, consul = t.nomad(), t.consul()

    nodes = try_get(lambda: nomad.get("/v1/nodes"), "nomad", [])
    leader = try_get(lambda: nomad.text("/v1/status/leader").strip().strip('"'), "nomad", "")
    members = try_get(lambda: consul.get("/v1/agent/members"), "consul", [])
    allocs = try_get(lambda: allocations(nomad, JOBS), "nomad", [])
    services = {}
    for name in JOBS:
        services[name] = try_get(lambda name=name: consul.get(f"/v1/health/service/{name}"), "consul", [])

    # Each allocation's service instance: Nomad names it _nomad-task-<alloc id>-...
    instance = {}
    for entries in services.values():
        for e in entries:
            sid = e["Service"]["ID"]
            for a in allocs:
                if a["ID"] in sid:
                    checks = [c for c in e["Checks"] if c.get("ServiceID")]
                    state = "passing" if all(c["Status"] == "passing" for c in checks) else \
                        "/".join(sorted({c["Status"] for c in checks})) or "no check"
                    instance[a["ID"]] = (e["Service"]["Address"], e["Service"]["Port"], state)

    def metrics_url(a):
        inst = instance.get(a["ID"])
        if not inst:
            return None
        addr, port, _ = inst
        return f"http://{addr}:{port}/metrics"

    first = {a["ID"]: scrape(metrics_url(a)) for a in allocs if metrics_url(a)}
    started = time.monotonic()
    time.sleep(args.interval)
    second = {a["ID"]: scrape(metrics_url(a)) for a in allocs if metrics_url(a)}
    elapsed = time.monotonic() - started

    rates = {}
    for a in allocs:
        s1, s2 = first.get(a["ID"]), second.get(a["ID"])
        if s1 is None or s2 is None:
            continue
        r1, e1 = requests_and_errors(a["JobID"], s1)
        r2, e2 = requests_and_errors(a["JobID"], s2)
        rates[a["ID"]] = ((r2 - r1) / elapsed, (e2 - e1) / elapsed, r2, e2)

    redis_table, redis_by_node = redis_rows(t, consul)

    # Machines: Nomad's nodes joined with Consul's members by name.
    member = {m["Name"]: m for m in members}
    names = sorted({n["Name"] for n in nodes} | set(member), key=lambda s: (len(s), s))
    rows = []
    for name in names:
        node = next((n for n in nodes if n["Name"] == name), None)
        m = member.get(name)
        addr = (node or {}).get("Address") or (m or {}).get("Addr", "-")
        c = "-"
        if m:
            c = {1: "alive", 2: "leaving", 3: "left", 4: "failed"}.get(m["Status"], str(m["Status"]))
            c += " server" if m.get("Tags", {}).get("role") == "consul" else " client"
            if m["Status"] not in (1, 3):  # a host that left (remove-host) is not down
                bad()
        nstate = "-"
        if node:
            nstate = node["Status"] + ("" if node["SchedulingEligibility"] == "eligible" else " ineligible")
            if leader.startswith(addr + ":"):
                nstate += " leader"
            if node["Status"] != "ready":
                bad()
        jobs = sorted(a["JobID"] for a in allocs if a.get("NodeName") == name)
        rps = sum(rates[a["ID"]][0] for a in allocs if a.get("NodeName") == name and a["JobID"] == "traefik"
                  and a["ID"] in rates)
        rows.append([name, addr, c, nstate, " ".join(jobs) or "-", f"{rps:.1f}",
                     redis_by_node.get(name, "-")])
    print(f"== machines ({t.kind})")
    table(["MACHINE", "ADDRESS", "CONSUL", "NOMAD", "ALLOCATIONS", "GW REQ/S", "REDIS"], rows)

    print("\n== allocations (rates over %.1fs from each one's /metrics)" % elapsed)
    rows = []
    for a in sorted(allocs, key=lambda a: (JOBS.index(a["JobID"]), a.get("NodeName", ""))):
        inst = instance.get(a["ID"])
        health = inst[2] if inst else "unregistered"
        if health != "passing":
            bad()
        rate = rates.get(a["ID"])
        if rate:
            req, err, total, errors = f"{rate[0]:.1f}", f"{rate[1]:.1f}", f"{int(rate[2])}", f"{int(rate[3])}"
        else:
            req = err = total = errors = "-"
        rows.append([a["JobID"], a["ID"][:8], a.get("NodeName", "-"), a["ClientStatus"], health,
                     f"{inst[0]}:{inst[1]}" if inst else "-", req, err, total, errors])
    table(["JOB", "ALLOC", "MACHINE", "STATUS", "CHECKS", "ADDRESS", "REQ/S", "5XX/S", "REQS", "5XX"], rows)
    for job in JOBS:
        if not any(a["JobID"] == job for a in allocs):
            print(f"(no running allocation of {job})")
            bad()

    print("\n== consul services")
    rows = []
    for name in try_get(lambda: sorted(consul.get("/v1/catalog/services")), "consul", []):
        entries = try_get(lambda name=name: consul.get(f"/v1/health/service/{name}"), "consul", [])
        passing = sum(all(c["Status"] == "passing" for c in e["Checks"]) for e in entries)
        rows.append([name, len(entries), passing, " ".join(sorted({e["Node"]["Node"] for e in entries}))])
    table(["SERVICE", "INSTANCES", "PASSING", "MACHINES"], rows)

    print("\n== redis")
    table(["MACHINE", "REDIS", "ROLE", "LAG", "DETAIL"], redis_table)
    # One Sentinel a server (the local stack: its one).
    views = {t.hosts[s].addr: sentinel_primary(t, t.hosts[s].addr) for s in t.servers}
    seen = {v for v in views.values() if v}
    for v in views.values():
        if v is None:
            bad()
    print("sentinels (%d): primary %s" % (len(views), " / ".join(sorted(seen)) or "unknown") +
          ("" if len(seen) <= 1 else "  (sentinels disagree)") +
          "".join(f"; {h}:{SENTINEL_PORT} down" for h, v in views.items() if v is None) +
          describe_sentinel_timers(t, [h for h, v in views.items() if v is not None]))

    gateway = t.gateway(None if t.kind == 'local' else t.server())
    try:
        with urllib.request.urlopen(gateway + "/", timeout=3) as r:
            print(f"\ncount via {gateway}/: {r.read().decode().strip()} (served by {r.headers.get('X-Served-By', '?')})")
    except OSError as e:
        print(f"\ncount via {gateway}/: gateway not answering ({e})")
        bad()
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # scripts/status | head
        sys.exit(1)
