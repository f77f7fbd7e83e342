"""scripts/status: one table per concern, every row a machine or an
allocation, for the local stack and the cluster alike. Sources: Nomad (nodes,
allocations), Consul (members, service health), Redis (INFO replication) and
Sentinel, and the /metrics of every web, web-inc and Traefik allocation, read
twice INTERVAL seconds apart for request and error rates. Locally also the
processes scripts/up started; in a cluster the days left of every
certificate its hosts serve; in both, the alerts Prometheus has firing (the
prometheus job, nomad/prometheus.nomad.hcl, found in Consul's catalog). Exits 1 when something expected is down
or a certificate expires within 30 days (a firing alert is listed; it does
not change the exit status).
"""

import argparse
import http.client
import json
import re
import ssl
import sys
import time
import urllib.request
from pathlib import Path

from . import client, expiry, supervisor, target
from .logs import JOBS, allocations
from .redis import RedisError, parse_info

SENTINEL_PORT = 26380
# Prometheus when Consul's catalog does not say (nomad/prometheus.nomad.hcl's static port).
PROMETHEUS = "http://127.0.0.1:9090"
ok = True


def bad(when=True):
    """Marks the run failed (exit 1), when WHEN is true."""
    global ok
    ok = ok and not when


def table(header, rows, title=None):
    if title:
        print(title)
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def try_get(fn, what, default):
    try:
        return fn()
    except client.ApiError as e:
        print(f"{what}: {e}")
        bad()
        return default


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
# What counts as traffic in a job's /metrics: (the counters, the label and
# its values that make a request public, the label of its status). The
# services' routes of the public contract (not health checks and scrapes),
# Traefik's public entrypoint.
TRAFFIC = {"traefik": ({"traefik_entrypoint_requests_total"}, "entrypoint", {"web"}, "code")}
SERVICE_TRAFFIC = ({"counter_http_requests_total", "counter_http_requests"}, "route", {"/", "/inc", "other"}, "status")


def traffic(t, job, address):
    """(requests, 5xx responses) so far, from the /metrics page of the
    instance of JOB at ADDRESS; None if unreachable."""
    try:
        if job in ("web", "web-inc"):  # HTTPS with a client certificate in a cluster
            status, text = t.service_get(job, address, "/metrics")
            if status != 200:
                return None
        else:
            with urllib.request.urlopen(f"http://{address}/metrics", timeout=2) as r:
                text = r.read().decode(errors="replace")
    except (OSError, ssl.SSLError, http.client.HTTPException):
        return None
    names, label, public, status = TRAFFIC.get(job, SERVICE_TRAFFIC)
    total = errors = 0.0
    for line in text.splitlines():
        m = SAMPLE.match(line)
        labels = dict(LABEL.findall(m.group(2) or "")) if m and m.group(1) in names else {}
        if labels.get(label) not in public:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        total += value
        errors += value if labels.get(status, "").startswith("5") else 0
    return total, errors


def ask(t, node, addr, port, *command):
    """The reply of the Redis or Sentinel (NODE: redis, sentinel) at ADDR:PORT
    to COMMAND; None when it does not answer."""
    try:
        with getattr(t, node)(addr, port) as r:
            return r.call(*command)
    except (OSError, RedisError):
        return None


# The timers counter-sentinel.service sets after every start
# (ExecStartPost=counter-sentinel-timers CONFIG NAME MS ...): read from the
# unit, so the two agree.
SENTINEL_UNIT = Path(__file__).resolve().parents[2] / "systemd/counter-sentinel.service"


def describe_sentinel_timers(t, addrs):
    """One phrase: the timers every Sentinel runs with, or which differ from the unit's."""
    words = next((line.split()[2:] for line in SENTINEL_UNIT.read_text().splitlines()
                  if line.startswith("ExecStartPost=") and "counter-sentinel-timers" in line), [])
    want, got = dict(zip(words[::2], words[1::2])), {}
    for a in addrs if want else ():
        reply = ask(t, "sentinel", a, SENTINEL_PORT, "SENTINEL", "DEBUG")
        if reply is not None:
            values = {str(k).lower(): str(v) for k, v in zip(reply[::2], reply[1::2])}
            got[a] = {n: values.get(n, "?") for n in want}
    if not got:  # no Sentinel told its timers: claim none
        return ""
    wrong = [f"{a} runs " + ", ".join(f"{n} {v}" for n, v in g.items()) for a, g in got.items() if g != want]
    if wrong:
        bad()
        return f"; {'; '.join(wrong)} (the unit sets " + ", ".join(f"{n} {v}" for n, v in want.items()) + \
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
    """The rows of the Redis table, and each machine's Redis in a phrase."""
    nodes = try_get(lambda: redis_nodes(consul), "consul", {})
    infos = {}
    for addr, port in sorted(nodes):
        reply = ask(t, "redis", addr, port, "INFO", "replication")
        infos[(addr, port)] = None if reply is None else parse_info(reply)
    # Lag is measured against the primary's own view of each replica.
    primary_offset, replica_lag = None, {}
    for info in infos.values():
        if info and info.get("role") == "master":
            primary_offset = int(info.get("master_repl_offset", 0))
            for k, v in info.items():
                if re.fullmatch(r"slave\d+", k):
                    f = dict(kv.split("=", 1) for kv in v.split(","))
                    replica_lag[(f["ip"], int(f["port"]))] = f"{primary_offset - int(f['offset'])}B {f['lag']}s"
    rows, per_node = [], {}
    for (addr, port), info in infos.items():
        if info is None:
            role, lag, detail, summary = "down", "-", "-", "down"
            bad()
        elif info.get("role") == "master":
            replicas = info.get("connected_slaves", "?")
            role, lag, detail = "primary", "-", f"replicas {replicas}, offset {primary_offset}"
            summary = f"primary ({replicas} replicas)"
        else:
            link = info.get("master_link_status", "?")
            role, lag = "replica", replica_lag.get((addr, port), "unknown")
            detail = f"link {link} to {info.get('master_host', '?')}:{info.get('master_port', '?')}"
            summary = f"replica lag {lag}" if link == "up" else f"replica link {link}"
            bad(link != "up")
        rows.append([nodes[(addr, port)], f"{addr}:{port}", role, lag, detail])
        per_node.setdefault(nodes[(addr, port)], []).append(summary)
    return rows, {node: ", ".join(s) for node, s in per_node.items()}


def prometheus_url(t):
    """Where the prometheus job's Prometheus answers: its service in Consul's
    catalog (its machine's address; loopback on the local stack)."""
    try:
        entries = t.consul(retries=0).get("/v1/catalog/service/prometheus")
    except (client.ApiError, OSError):
        entries = []
    for e in entries:
        return f"http://{e['ServiceAddress'] or e['Address']}:{e['ServicePort']}"
    return PROMETHEUS


def print_alerts(prometheus):
    """The alerts PROMETHEUS has firing (or pending: their condition holds
    but not yet for as long as the rule wants)."""
    try:
        with urllib.request.urlopen(f"{prometheus}/api/v1/alerts", timeout=3) as r:
            alerts = json.load(r)["data"]["alerts"]
    except (OSError, ValueError, KeyError) as e:
        print(f"\n== alerts: Prometheus at {prometheus} not answering ({e})")
        return
    rows = [[a["labels"]["alertname"], a["state"], a["labels"].get("severity", "-"),
             a.get("activeAt", "")[:19].replace("T", " "), a.get("annotations", {}).get("summary", "")]
            for a in sorted(alerts, key=lambda a: (a["state"] != "firing", a["labels"]["alertname"]))]
    if rows:
        table(["ALERT", "STATE", "SEVERITY", "SINCE (UTC)", "SUMMARY"], rows, f"\n== alerts ({prometheus})")
    else:
        print(f"\n== alerts ({prometheus}): none")


def main():
    p = argparse.ArgumentParser(prog="scripts/status", description=__doc__.split("\n\n")[0])
    target.add_arguments(p)
    p.add_argument("--interval", type=float, default=2.0, help="seconds between the two reads of /metrics")
    args = p.parse_args()
    t = target.from_args(args)
    if t.kind == "local":
        pids = {c.name: supervisor.pid(c.name) for c in supervisor.COMPONENTS}
        table(["PROCESS", "PID", "STATE"], [[n, p or "-", "running" if p else "stopped"] for n, p in pids.items()])
        bad(not all(pids.values()))
        print()
    nomad, consul = t.nomad(), t.consul()

    nodes = try_get(lambda: nomad.get("/v1/nodes"), "nomad", [])
    leader = try_get(lambda: nomad.text("/v1/status/leader").strip().strip('"'), "nomad", "")
    members = try_get(lambda: consul.get("/v1/agent/members"), "consul", [])
    allocs = try_get(lambda: allocations(nomad, JOBS), "nomad", [])
    # Each allocation's service instance (Nomad names it _nomad-task-<alloc id>-...): its address and checks.
    instance = {}
    for name in JOBS:
        for e in try_get(lambda name=name: consul.get(f"/v1/health/service/{name}"), "consul", []):
            checks = {c["Status"] for c in e["Checks"] if c.get("ServiceID")}
            state = "passing" if checks <= {"passing"} else "/".join(sorted(checks))
            for a in (a for a in allocs if a["ID"] in e["Service"]["ID"]):
                instance[a["ID"]] = (f"{e['Service']['Address']}:{e['Service']['Port']}", state)

    metrics = {a["ID"]: (a["JobID"], instance[a["ID"]][0]) for a in allocs if a["ID"] in instance}
    first = {i: traffic(t, *m) for i, m in metrics.items()}
    started = time.monotonic()
    time.sleep(args.interval)
    second = {i: traffic(t, *m) for i, m in metrics.items()}
    elapsed = time.monotonic() - started
    # alloc ID -> (requests/s, 5xx/s, requests, 5xx)
    rates = {i: ((second[i][0] - first[i][0]) / elapsed, (second[i][1] - first[i][1]) / elapsed, *second[i])
             for i in metrics if first[i] is not None and second[i] is not None}

    redis_table, redis_by_node = redis_rows(t, consul)

    # Machines: Nomad's nodes joined with Consul's members by name.
    member = {m["Name"]: m for m in members}
    rows = []
    for name in sorted({n["Name"] for n in nodes} | set(member), key=lambda s: (len(s), s)):
        node, m = next((n for n in nodes if n["Name"] == name), None), member.get(name)
        addr = (node or {}).get("Address") or (m or {}).get("Addr", "-")
        c = nstate = "-"
        if m:
            c = {1: "alive", 2: "leaving", 3: "left", 4: "failed"}.get(m["Status"], str(m["Status"]))
            c += " server" if m.get("Tags", {}).get("role") == "consul" else " client"
            bad(m["Status"] not in (1, 3))  # a host that left (remove-host) is not down
        if node:
            nstate = node["Status"] + ("" if node["SchedulingEligibility"] == "eligible" else " ineligible")
            nstate += " leader" if leader.startswith(addr + ":") else ""
            bad(node["Status"] != "ready")
        here = [a for a in allocs if a.get("NodeName") == name]
        rps = sum(rates[a["ID"]][0] for a in here if a["JobID"] == "traefik" and a["ID"] in rates)
        rows.append([name, addr, c, nstate, " ".join(sorted(a["JobID"] for a in here)) or "-", f"{rps:.1f}",
                     redis_by_node.get(name, "-")])
    table(["MACHINE", "ADDRESS", "CONSUL", "NOMAD", "ALLOCATIONS", "GW REQ/S", "REDIS"], rows, f"== machines ({t.kind})")

    rows = []
    for a in sorted(allocs, key=lambda a: (JOBS.index(a["JobID"]), a.get("NodeName", ""))):
        (addr, health), rate = instance.get(a["ID"], ("-", "unregistered")), rates.get(a["ID"])
        bad(health != "passing")
        rows.append([a["JobID"], a["ID"][:8], a.get("NodeName", "-"), a["ClientStatus"], health, addr,
                     *([f"{rate[0]:.1f}", f"{rate[1]:.1f}", int(rate[2]), int(rate[3])] if rate else ["-"] * 4)])
    table(["JOB", "ALLOC", "MACHINE", "STATUS", "CHECKS", "ADDRESS", "REQ/S", "5XX/S", "REQS", "5XX"], rows,
          "\n== allocations (rates over %.1fs from each one's /metrics)" % elapsed)
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

    table(["MACHINE", "REDIS", "ROLE", "LAG", "DETAIL"], redis_table, "\n== redis")
    # One Sentinel a server (the local stack: its one).
    views = {}
    for addr in (t.hosts[s].addr for s in t.servers):
        reply = ask(t, "sentinel", addr, SENTINEL_PORT, "SENTINEL", "get-master-addr-by-name", "counter")
        views[addr] = ":".join(reply[:2]) if reply else None
        bad(views[addr] is None)
    seen = {v for v in views.values() if v}
    print("sentinels (%d): primary %s" % (len(views), " / ".join(sorted(seen)) or "unknown") +
          ("" if len(seen) <= 1 else "  (sentinels disagree)") +
          "".join(f"; {h}:{SENTINEL_PORT} down" for h, v in views.items() if v is None) +
          describe_sentinel_timers(t, [h for h, v in views.items() if v is not None]))

    if t.ca("nomad"):
        cert_rows, fine = expiry.rows(t)
        table(["MACHINE", "CERTIFICATE", "ADDRESS", "EXPIRES", "DAYS", "NOTE"], cert_rows,
              "\n== certificates (as each endpoint serves it; each CA's file)")
        bad(not fine)

    print_alerts(prometheus_url(t))

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
