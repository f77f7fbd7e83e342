"""Turns scripts/bench's records into the result: JSON, a markdown table, a plot.

usage: report.py SUITE RECORDS OUT_PREFIX
Reads RECORDS (lines `run NAME ROUND key=value...` and `value KEY TEXT`), writes
OUT_PREFIX.json, .md and, with matplotlib, .png, and prints the table. Every
throughput figure is the median over the rounds; every ratio is the median of
the per-round ratios (baseline and subject ran next to each other in the same
round, so drift in the machine's load hits both).
"""

import json
import statistics
import sys
from collections import defaultdict

import report_plot

# name in "ratios": (subject run, baseline run, target: at least this many times the baseline, or None)
RATIOS = {
    "web_get_vs_constant": ("web_get", "constant_get", 0.7),
    "inc_vs_redis_incr": ("web_inc", "redis_incr", 0.7),
    # What TLS to Redis costs the services: the same service, Redis over TLS / plain TCP.
    "web_get_redis_tls_vs_plain": ("web_get_tls", "web_get", None),
    # A web that Prometheus scrapes at the stack's interval / one nothing scrapes.
    "web_get_scraped_vs_not": ("web_get_scraped", "web_get_unscraped", 0.98),
    "inc_redis_tls_vs_plain": ("web_inc_tls", "web_inc", None),
    "gateway_get_vs_bare_traefik": ("gw_web_get", "gw_ceiling_bare", 0.85),
    "gateway_inc_vs_bare_traefik": ("gw_web_inc", "gw_ceiling_bare", 0.8),
    "gateway_ceiling_vs_bare_traefik": ("gw_ceiling_default", "gw_ceiling_bare", 0.9),
    # Against bare Traefik with the standard engine, the one the gateway can run
    # (the fast proxy is unsafe for /inc): what configuration could win back.
    "gateway_get_vs_bare_std_traefik": ("gw_web_get", "gw_ceiling_bare_std", 0.8),
    "gateway_ceiling_vs_bare_std_traefik": ("gw_ceiling_default", "gw_ceiling_bare_std", None),
    "bare_std_vs_fast_proxy_traefik": ("gw_ceiling_bare_std", "gw_ceiling_bare", None),
    # GET carries the retry middleware, /inc does not.
    "gateway_get_vs_inc": ("gw_web_get", "gw_web_inc", 0.95),
    "gateway_vs_traefik_ceiling": ("gw_web_get", "gw_ceiling_default", None),
    # What a cluster's mutual TLS from the gateway to the services costs the
    # gateway's throughput (#23: at most 10 %).
    "gateway_get_mtls_vs_plain": ("gw_web_get_mtls", "gw_web_get", 0.9),
    "gateway_inc_mtls_vs_plain": ("gw_web_inc_mtls", "gw_web_inc", 0.9),
    "bare_traefik_vs_nginx": ("gw_ceiling_bare", "gw_ceiling_nginx", None),
    "nginx_proxy_vs_constant": ("gw_ceiling_nginx", "direct_constant", None),
    "bare_traefik_vs_constant": ("gw_ceiling_bare", "direct_constant", None),
    "traefik_ceiling_vs_constant": ("gw_ceiling_default", "direct_constant", None),
    "gateway_get_vs_direct": ("gw_web_get", "direct_web_get", None),
    "gateway_inc_vs_direct": ("gw_web_inc", "direct_web_inc", None),
    "mix_vs_traefik_ceiling": ("gw_mix", "gw_ceiling_default", None),
    "web_x2_vs_x1": ("gw_web_get_x2", "gw_web_get", None),
    "web_x3_vs_x1": ("gw_web_get_x3", "gw_web_get", None),
}
# name in "costs": (subject run, baseline run, figure, target: at most this many
# times the baseline, or None). Less is better: CPU per request, p99.
COSTS = {
    # web's CPU per request behind Traefik vs direct: at one rate (open loop),
    # and at each one's maximum (closed loop: direct runs ~5x faster, so its
    # reads coalesce into bigger batches, gets_per_request).
    "web_cpu_behind_gateway_vs_direct_same_rate": ("lat_gw_web_get", "lat_direct_web_get", "cpu_backend", 1.2),
    "web_cpu_behind_gateway_vs_direct_closed_loop": ("gw_web_get", "direct_web_get", "cpu_backend", None),
    "web_cpu_behind_bare_std_traefik_vs_direct": ("lat_bare_std_web", "lat_direct_web_get", "cpu_backend", None),
    "web_cpu_with_traefik_headers_vs_without": ("lat_direct_web_get_headers", "lat_direct_web_get", "cpu_backend", None),
    # Where the mutual TLS hop's cost lands: Traefik's CPU and web's, per request.
    "gateway_cpu_mtls_vs_plain": ("gw_web_get_mtls", "gw_web_get", "cpu_traefik", None),
    "web_cpu_mtls_vs_plain": ("gw_web_get_mtls", "gw_web_get", "cpu_backend", None),
    # The tail at half the gateway's GET maximum, whole chain and hop by hop.
    "gateway_get_p99_vs_bare_std_traefik": ("lat_gw_web_get", "lat_bare_std_constant", "p99", 2.0),
    "gateway_constant_p99_vs_bare_std_traefik": ("lat_gw_constant", "lat_bare_std_constant", "p99", None),
    "gateway_memory_p99_vs_gateway_constant": ("lat_gw_memory", "lat_gw_constant", "p99", None),
    "gateway_web_p99_vs_gateway_memory": ("lat_gw_web_get", "lat_gw_memory", "p99", None),
    "bare_std_web_p99_vs_bare_std_constant": ("lat_bare_std_web", "lat_bare_std_constant", "p99", None),
}
# name in "latency_ms": the run it is read from.
LATENCY = {
    "web_get": "web_get", "web_inc": "web_inc", "web_get_redis_tls": "web_get_tls", "web_inc_redis_tls": "web_inc_tls",
    "gateway_get_half_load": "lat_gw_web_get", "direct_get_same_rate": "lat_direct_web_get",
    "bare_traefik_constant_same_rate": "lat_bare_constant", "nginx_constant_same_rate": "lat_nginx_constant",
    "gateway_inc_half_load": "lat_gw_web_inc", "flood_inc_split": "flood_split_inc", "flood_inc_all": "flood_all_inc",
    "direct_get_traefik_headers_same_rate": "lat_direct_web_get_headers", "gateway_memory_same_rate": "lat_gw_memory",
    "gateway_constant_same_rate": "lat_gw_constant", "bare_std_traefik_constant_same_rate": "lat_bare_std_constant",
    "bare_std_traefik_web_same_rate": "lat_bare_std_web",
}
P99_TARGET_MS = 5.0
RSS_TARGET_MB = 16.0


def read_records(path):
    runs, values = defaultdict(dict), {}
    for line in open(path):
        kind, rest = line.rstrip("\n").split(" ", 1)
        if kind == "run":
            name, rnd, *pairs = rest.split(" ")
            run = runs[name][int(rnd)] = {k: float(v) for k, v in (p.split("=", 1) for p in pairs if "=" in p)}
            if any(k.startswith("cpu_") for k in run):  # the CPU per request of every process watched
                run["cpu"] = sum(v for k, v in run.items() if k.startswith("cpu_"))
        else:
            key, _, text = rest.partition(" ")
            values[key] = text
    return runs, values


def number(text):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


class Result:
    def __init__(self, runs):
        self.runs = runs

    def has(self, names, key=None):
        """Every one of these runs is there (and has KEY in every round)."""
        return all(n in self.runs and all(key is None or key in rnd for rnd in self.runs[n].values()) for n in names)

    def med(self, name, key="rps"):
        return statistics.median(r[key] for r in self.runs[name].values())

    def ratio(self, a, b, key="rps"):
        """The median of the per-round ratios of a's KEY to b's."""
        rounds = self.runs[a].keys() & self.runs[b].keys()
        return round(statistics.median(self.runs[a][i][key] / self.runs[b][i][key] for i in rounds), 3)

    def latency(self, name):
        out = {p: round(self.med(name, p), 3) for p in ("p50", "p99", "p999")}
        if self.has([name], "rate"):
            out["rate_rps"] = self.med(name, "rate")
        return out


def p50_p999(x):
    return f"p50 {x['p50']} ms, p99 {x['p99']} ms, p999 {x['p999']} ms"


def verdict(value, goal):
    if goal is None:
        return ""
    return f">= {goal}x: met" if value >= goal else f">= {goal}x: missed by {abs(1 - value / goal) * 100:.0f} %"


def cost_verdict(value, most):
    if most is None:
        return ""
    return f"<= {most}x: met" if value <= most else f"<= {most}x: missed by {(value / most - 1) * 100:.0f} %"


def build(suite, runs, values):
    r = Result(runs)
    groups = defaultdict(dict)
    for key, text in values.items():
        group, _, sub = key.partition(".")
        groups[group][sub] = number(text)
    out = {"suite": suite, "timestamp": values.get("meta.timestamp", ""), "machine": groups.pop("machine", {}),
           "settings": {**groups.pop("settings", {}), **groups.pop("meta", {})}}
    out["rps"] = {name: round(r.med(name), 1) for name in sorted(runs) if "rps" in next(iter(runs[name].values()))}
    out["runs"] = {name: [runs[name][i].get("rps") for i in sorted(runs[name])] for name in sorted(runs)}
    ratios = {name: spec for name, spec in RATIOS.items() if r.has(spec[:2])}
    out["ratios"] = {name: r.ratio(a, b) for name, (a, b, _) in ratios.items()}
    out["targets"] = {name: f">= {goal}" for name, (_, _, goal) in ratios.items() if goal}
    # The same ratios from CPU time per request: steadier when other work shares the
    # machine. Only between two runs through Traefik: wrk's own CPU is not counted,
    # which is fair only where it is small next to the path's. Less CPU is faster.
    # Both runs must have watched the whole path: the proxy and the backend.
    out["ratios_cpu"] = {name: r.ratio(b, a, "cpu") for name, (a, b, _) in ratios.items()
                         if a.startswith("gw_") and b.startswith("gw_") and r.has([a, b], "cpu_backend")}
    costs = {name: spec for name, spec in COSTS.items() if r.has(spec[:2], spec[2])}
    out["costs"] = {name: r.ratio(a, b, key) for name, (a, b, key, _) in costs.items()}
    out["targets"] |= {f"costs.{name}": f"<= {most}" for name, (_, _, _, most) in costs.items() if most}
    if r.has(["flood_split_inc", "flood_all_inc"]):
        out["ratios"]["flood_inc_p99_split_vs_all"] = r.ratio("flood_split_inc", "flood_all_inc", "p99")
    out["latency_ms"] = {key: r.latency(name) for key, name in LATENCY.items() if name in runs}
    for key in ("gateway_get_half_load", "gateway_inc_half_load"):
        if key in out["latency_ms"]:
            out["targets"][f"latency_ms.{key}.p99"] = f"<= {P99_TARGET_MS}"
    out["rss_mb"] = groups.pop("rss_mb", {})
    # label: i, the runs traefik_v<i> (wrk) and traefik_lat_v<i> (loadgen); 0 is the project config.
    variants = {label: i for i, label in sorted(groups.pop("traefik_variant", {}).items(), key=lambda v: int(v[0]))}
    if variants:
        out["traefik_variants"] = {label: r.ratio(f"traefik_v{i}", "traefik_v0") for label, i in variants.items()}
        if r.has([f"traefik_v{i}" for i in variants.values()], "cpu_traefik"):
            # < 1: the variant spends less CPU per request than the project config.
            out["traefik_variants_cpu_per_request"] = {
                label: r.ratio(f"traefik_v{i}", "traefik_v0", "cpu_traefik") for label, i in variants.items()}
        if r.has([f"traefik_lat_v{i}" for i in variants.values()]):
            out["traefik_variants_latency_ms"] = {label: r.latency(f"traefik_lat_v{i}") for label, i in variants.items()}
    cpu = {}
    for name, rounds in sorted(runs.items()):
        keys = sorted({k for rnd in rounds.values() for k in rnd if k.startswith("cpu_")})
        if keys:
            cpu[name] = {k[4:]: round(r.med(name, k), 1) for k in keys}
    if cpu:
        out["cpu_us_per_request"] = cpu
    gets = {name: round(r.med(name, "gets_per_request"), 3) for name in sorted(runs) if r.has([name], "gets_per_request")}
    if gets:
        out["redis_gets_per_request"] = gets
    accepts = {name: round(r.med(name, "tcp_accepts_per_s"), 1) for name in sorted(runs)
               if r.has([name], "tcp_accepts_per_s")}
    if accepts:
        out["tcp_accepts_per_s"] = accepts
    out.update(groups)
    return out


# The table's rows ("measure | value | target"), by section: a section is shown
# when its key is in that part of the result. Rows are format strings over the
# result's parts (rps, ratios, latency_ms, rss_mb...) and those table() adds.
TABLE = [
    ("ratios", "web_get_vs_constant", [
        "constant server GET / | {req[constant_get]} | baseline",
        "web GET / | {req[web_get]} ({p50_p99[web_get]}) | ",
        "**web / constant** | {ratio[web_get_vs_constant]}",
        "redis-benchmark INCR (no pipelining) | {req[redis_incr]} | baseline",
        "web-inc /inc (INCR × n + WAIT, acknowledged) | {req[web_inc]} ({p50_p99[web_inc]}) | ",
        "**web-inc / INCR** | {ratio[inc_vs_redis_incr]}",
        "peak RSS web / web-inc | {rss_mb[web]} MB / {rss_mb[web_inc]} MB | {rss_target}",
        "increments acknowledged / final count | {increments[acknowledged]} / {increments[final_count]} | acked <= final",
    ]),
    ("ratios", "web_get_redis_tls_vs_plain", [
        "web GET /, Redis over TLS | {req[web_get_tls]} ({p50_p99[web_get_redis_tls]}) | plain TCP: {req[web_get]}",
        "**web GET, Redis TLS / plain** | {ratio[web_get_redis_tls_vs_plain]}",
        "web-inc /inc, Redis over TLS | {req[web_inc_tls]} ({p50_p99[web_inc_redis_tls]}) | plain TCP: {req[web_inc]}",
        "**web-inc /inc, Redis TLS / plain** | {ratio[inc_redis_tls_vs_plain]}",
        "peak RSS web / web-inc, Redis over TLS | {rss_mb[web_tls]} MB / {rss_mb[web_inc_tls]} MB | {rss_target}",
        "increments acknowledged / final count, Redis over TLS"
        " | {increments_tls[acknowledged]} / {increments_tls[final_count]} | acked <= final",
    ]),
    ("ratios", "web_get_scraped_vs_not", [
        "web GET /, scraped by Prometheus at the stack's interval | {req[web_get_scraped]}"
        " | the same web, not scraped: {req[web_get_unscraped]}",
        "**web GET, scraped / not** | {ratio[web_get_scraped_vs_not]}",
        "Prometheus' CPU while it scrapes, share of the host's cores | {scrape[prometheus_cpu_pct_of_host]} % | <= 2 %",
    ]),
    ("ratios", "gateway_ceiling_vs_bare_traefik", [
        "constant server direct | {req[direct_constant]} | baseline",
        "nginx (1 worker, keep-alive upstream) in front of it | {req[gw_ceiling_nginx]}"
        " | {ratios[nginx_proxy_vs_constant]}x direct: what a proxy hop costs",
        "bare Traefik (fast proxy, no logs, no metrics) in front of it | {req[gw_ceiling_bare]}"
        " | {ratios[bare_traefik_vs_constant]}x direct, {ratios[bare_traefik_vs_nginx]}x nginx",
        "Traefik, project config, in front of it (the gateway's ceiling) | {req[gw_ceiling_default]}"
        " | {ratios[traefik_ceiling_vs_constant]}x direct",
        "**gateway ceiling / bare Traefik** | {ratio[gateway_ceiling_vs_bare_traefik]}",
        "web GET / through the gateway | {req[gw_web_get]} (direct: {rps[direct_web_get]:,.0f})"
        " | {ratios[gateway_vs_traefik_ceiling]}x the gateway's ceiling",
        "**gateway GET / bare Traefik** | {ratio[gateway_get_vs_bare_traefik]}",
        "web-inc /inc through the gateway | {req[gw_web_inc]} (direct: {rps[direct_web_inc]:,.0f})"
        " | {ratios[gateway_inc_vs_direct]}x direct",
        "**gateway /inc / bare Traefik** | {ratio[gateway_inc_vs_bare_traefik]}",
        "CPU per request, us: nginx / bare Traefik / gateway, in front of the constant server"
        " | {cpu[gw_ceiling_nginx]} / {cpu[gw_ceiling_bare]} / {cpu[gw_ceiling_default]} | where the time goes",
        "CPU per request, us: gateway GET / direct web GET / direct constant"
        " | {cpu[gw_web_get]} / {cpu[direct_web_get]} / {cpu[direct_constant]} | ",
        "90/10 GET//inc mix through Traefik | {req[gw_mix]} | {ratios[mix_vs_traefik_ceiling]}x ceiling",
        "web x1 / x2 / x3 through Traefik | {rps[gw_web_get]:,.0f} / {rps[gw_web_get_x2]:,.0f} / {rps[gw_web_get_x3]:,.0f}"
        " req/s | x2 {ratios[web_x2_vs_x1]}x, x3 {ratios[web_x3_vs_x1]}x",
        "GET / through Traefik at half max {half_load[gateway_get_half_load]}",
        "/inc through Traefik at half max {half_load[gateway_inc_half_load]}",
    ]),
    ("latency_ms", "direct_get_same_rate", ["GET / direct at the same rate (no gateway) | {p50_p999[direct_get_same_rate]} | "]),
    ("costs", "gateway_get_p99_vs_bare_std_traefik", [
        "bare Traefik, standard engine, in front of the constant server | {req[gw_ceiling_bare_std]}"
        " | {ratios[bare_std_vs_fast_proxy_traefik]}x bare Traefik with the fast proxy",
        "**gateway ceiling / bare standard-engine Traefik** | {ratio[gateway_ceiling_vs_bare_std_traefik]}",
        "**gateway GET / bare standard-engine Traefik** | {ratio[gateway_get_vs_bare_std_traefik]}",
        "**gateway GET / gateway /inc** | {ratio[gateway_get_vs_inc]}",
        "GET / and /inc through the gateway, mutual TLS to the services (a cluster's hop)"
        " | {req[gw_web_get_mtls]}; {req[gw_web_inc_mtls]} | ",
        "**gateway GET, mutual TLS / plain HTTP to web** | {ratio[gateway_get_mtls_vs_plain]}",
        "**gateway /inc, mutual TLS / plain HTTP to web-inc** | {ratio[gateway_inc_mtls_vs_plain]}",
        "CPU per request, mutual TLS / plain: Traefik; web"
        " | {costs[gateway_cpu_mtls_vs_plain]}x; {costs[web_cpu_mtls_vs_plain]}x | ",
        "web's CPU per request, us: through the gateway / direct (closed loop)"
        " | {cpu[gw_web_get]} / {cpu[direct_web_get]} | Redis GETs per request: {gets[gw_web_get]} / {gets[direct_web_get]}",
        "**web CPU behind the gateway / direct, closed loop** | {cost[web_cpu_behind_gateway_vs_direct_closed_loop]}",
        "TCP connections accepted per second, GET through the gateway / direct (closed loop)"
        " | {accepts[gw_web_get]} / {accepts[direct_web_get]} | none opened per request",
        "web's CPU per request at {half_rate}: through the gateway / bare std Traefik / direct with Traefik's headers / direct"
        " | {cpu[lat_gw_web_get]} / {cpu[lat_bare_std_web]} / {cpu[lat_direct_web_get_headers]} / {cpu[lat_direct_web_get]}"
        " | Redis GETs per request: {gets[lat_gw_web_get]} / {gets[lat_bare_std_web]} / {gets[lat_direct_web_get_headers]}"
        " / {gets[lat_direct_web_get]}",
        "**web CPU behind the gateway / direct, same rate** | {cost[web_cpu_behind_gateway_vs_direct_same_rate]}",
        "web CPU behind bare std Traefik / direct; direct with / without Traefik's headers, same rate"
        " | {costs[web_cpu_behind_bare_std_traefik_vs_direct]}x; {costs[web_cpu_with_traefik_headers_vs_without]}x | ",
        "hop by hop at {half_rate}: bare std Traefik -> constant | {p50_p999[bare_std_traefik_constant_same_rate]}"
        " | CPU per request, us: {cpu[lat_bare_std_constant]}",
        "gateway -> constant | {p50_p999[gateway_constant_same_rate]}"
        " | p99 {costs[gateway_constant_p99_vs_bare_std_traefik]}x bare std; CPU {cpu[lat_gw_constant]}",
        "gateway -> web's routes over memory | {p50_p999[gateway_memory_same_rate]}"
        " | p99 {costs[gateway_memory_p99_vs_gateway_constant]}x gateway -> constant; CPU {cpu[lat_gw_memory]}",
        "gateway -> web -> Redis (the chain) | {p50_p999[gateway_get_half_load]}"
        " | p99 {costs[gateway_web_p99_vs_gateway_memory]}x gateway -> memory; CPU {cpu[lat_gw_web_get]}",
        "bare std Traefik -> web -> Redis | {p50_p999[bare_std_traefik_web_same_rate]}"
        " | p99 {costs[bare_std_web_p99_vs_bare_std_constant]}x bare std -> constant; CPU {cpu[lat_bare_std_web]}",
        "web direct with Traefik's headers | {p50_p999[direct_get_traefik_headers_same_rate]} | ",
        "**gateway GET p99 / bare std Traefik p99, same rate** | {cost[gateway_get_p99_vs_bare_std_traefik]}",
    ]),
    ("latency_ms", "bare_traefik_constant_same_rate", [
        "bare Traefik in front of the constant server, same rate | {p50_p999[bare_traefik_constant_same_rate]} | ",
        "nginx in front of the constant server, same rate | {p50_p999[nginx_constant_same_rate]} | ",
    ]),
    ("ratios", "gateway_ceiling_vs_bare_traefik", [
        "/inc under a GET flood ({settings[flood_inc_rate]} req/s), split web + web-inc | {p50_p999[flood_inc_split]}"
        " | GET flood {req[flood_split_get]}",
        "/inc under a GET flood ({settings[flood_inc_rate]} req/s), one process --role all | {p50_p999[flood_inc_all]}"
        " | GET flood {req[flood_all_get]}",
        "**/inc p99 split / single process** | **{ratios[flood_inc_p99_split_vs_all]}x** | < 1: split is faster",
        "peak RSS web (max of 3) / web-inc / --role all"
        " | {rss_mb[stack_web_max]} / {rss_mb[stack_web_inc]} / {rss_mb[web_role_all]} MB | {rss_target}",
        "peak RSS Traefik project / bare; nginx worker"
        " | {rss_mb[traefik_default]} / {rss_mb[traefik_bare]}; {rss_mb[nginx_worker]} MB | ",
        "increments acknowledged / final count"
        " | {increments_stack[acknowledged]} / {increments_stack[final_count]} | acked <= final",
    ]),
]


def table(out):
    t, lat, s = out["ratios"], out["latency_ms"], out["settings"]

    def ratio(name):
        """The ratio (and the same from CPU per request, where there is one) | its target's verdict."""
        by_cpu = f" (from CPU per request: {out['ratios_cpu'][name]}x)" if name in out["ratios_cpu"] else ""
        return f"**{t[name]}x**{by_cpu} | {verdict(t[name], RATIOS[name][2])}"

    def cost(name):
        return f"**{out['costs'][name]}x** | {cost_verdict(out['costs'][name], COSTS[name][3])}"

    def half_load(x):
        met = "met" if x["p99"] <= P99_TARGET_MS else f"missed, {x['p99'] / P99_TARGET_MS:.1f}x the target"
        return f"({x['rate_rps']:,.0f} req/s, open loop) | {p50_p999(x)} | p99 <= {P99_TARGET_MS:g} ms: {met}"

    cpu = out.get("cpu_us_per_request", {})
    parts = {**out, "rss_target": f"<= {RSS_TARGET_MB:g} MB", "ratio": {n: ratio(n) for n in t if n in RATIOS},
             "req": {k: f"{v:,.0f} req/s" for k, v in out["rps"].items()},
             "p50_p99": {k: f"p50 {x['p50']} ms, p99 {x['p99']} ms" for k, x in lat.items()},
             "p50_p999": {k: p50_p999(x) for k, x in lat.items()},
             "half_load": {k: half_load(x) for k, x in lat.items() if "rate_rps" in x},
             "half_rate": f"{lat['gateway_get_half_load']['rate_rps']:,.0f} req/s" if "gateway_get_half_load" in lat else "",
             "cost": {n: cost(n) for n in out.get("costs", {})},
             "gets": defaultdict(str, out.get("redis_gets_per_request", {})),
             "accepts": defaultdict(str, out.get("tcp_accepts_per_s", {})),
             "cpu": defaultdict(str, {n: ", ".join(f"{k} {v:g}" for k, v in c.items()) for n, c in cpu.items()})}
    lines = [f"| measure (median of {s['rounds']} interleaved runs, -c{s['connections']}, {s['duration_s']} s each)"
             " | value | target |", "|---|---|---|"]
    lines += [f"| {row.format(**parts)} |" for part, key, rows in TABLE if key in out[part] for row in rows]
    if "traefik_variants" in out:
        if "web_get_vs_constant" not in t and "gateway_ceiling_vs_bare_traefik" not in t:
            lines[0] = "| Traefik in front of the constant server | ceiling vs the project config | latency, open loop |"
        cpu = out.get("traefik_variants_cpu_per_request", {})
        for i, (label, ratio) in enumerate(out["traefik_variants"].items()):
            base = f" ({out['rps']['traefik_v0']:,.0f} req/s)" if i == 0 else ""
            cpu_text = f", CPU per request {cpu[label]}x" if label in cpu else ""
            lat_ms = out.get("traefik_variants_latency_ms", {}).get(label)
            lat_cell = f"p50 {lat_ms['p50']} ms, p99 {lat_ms['p99']} ms at {lat_ms['rate_rps']:,.0f} req/s" if lat_ms else ""
            if f"traefik_v{i}" in out["rss_mb"]:
                lat_cell += f"; peak RSS {out['rss_mb'][f'traefik_v{i}']} MB"
            lines.append(f"| Traefik ceiling: {label}{base} | {ratio}x{cpu_text} | {lat_cell} |")
    return "\n".join(lines) + "\n"


def write(suite, records, prefix):
    out = build(suite, *read_records(records))
    text = table(out)
    with open(prefix + ".json", "w") as f:
        json.dump(out, f, indent=2)
    with open(prefix + ".md", "w") as f:
        f.write(text)
    report_plot.plot(out, prefix + ".png", RATIOS, P99_TARGET_MS)
    print("\n" + text)


if __name__ == "__main__":
    write(*sys.argv[1:4])
