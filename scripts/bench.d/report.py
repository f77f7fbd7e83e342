"""Turns scripts/bench's records into the result: JSON, a markdown table, a plot.

usage: report.py SUITE RECORDS OUT_PREFIX
Reads RECORDS (lines `run NAME ROUND key=value...` and `value KEY TEXT`),
writes OUT_PREFIX.json, OUT_PREFIX.md and, with matplotlib, OUT_PREFIX.png,
and prints the table. Every throughput figure is the median over the rounds;
every ratio is the median of the per-round ratios (baseline and subject ran
next to each other in the same round, so drift in the machine's load hits both).
"""

import json
import statistics
import sys
from collections import defaultdict

# name in "ratios": (subject run, baseline run, target as (">=", x) or None)
RATIOS = {
    "web_get_vs_constant": ("web_get", "constant_get", (">=", 0.7)),
    "inc_vs_redis_incr": ("web_inc", "redis_incr", (">=", 0.7)),
    # What TLS to Redis costs the services: the same service, Redis over TLS / plain TCP.
    "web_get_redis_tls_vs_plain": ("web_get_tls", "web_get", None),
    "inc_redis_tls_vs_plain": ("web_inc_tls", "web_inc", None),
    "gateway_get_vs_bare_traefik": ("gw_web_get", "gw_ceiling_bare", (">=", 0.85)),
    "gateway_inc_vs_bare_traefik": ("gw_web_inc", "gw_ceiling_bare", (">=", 0.8)),
    "gateway_ceiling_vs_bare_traefik": ("gw_ceiling_default", "gw_ceiling_bare", (">=", 0.9)),
    "gateway_vs_traefik_ceiling": ("gw_web_get", "gw_ceiling_default", None),
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
P99_TARGET_MS = 5.0
RSS_TARGET_MB = 16.0


def read_records(path):
    runs, values = defaultdict(dict), {}
    for line in open(path):
        kind, rest = line.rstrip("\n").split(" ", 1)
        if kind == "run":
            name, rnd, *pairs = rest.split(" ")
            runs[name][int(rnd)] = {k: float(v) for k, v in (p.split("=", 1) for p in pairs if "=" in p)}
        else:
            key, _, text = rest.partition(" ")
            values[key] = text
    return runs, values


def number(text):
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


class Result:
    def __init__(self, runs):
        self.runs = runs

    def has(self, *names):
        return all(n in self.runs for n in names)

    def med(self, name, key="rps"):
        return statistics.median(r[key] for r in self.runs[name].values())

    def ratio(self, a, b, key="rps"):
        rounds = sorted(set(self.runs[a]) & set(self.runs[b]))
        return round(statistics.median(self.runs[a][i][key] / self.runs[b][i][key] for i in rounds), 3)

    def cpu_ratio(self, a, b):
        """b's CPU per request (all watched processes) over a's: the throughput
        ratio a/b that CPU cost alone predicts, whatever CPU share the run got."""
        def total(rnd):
            return sum(v for k, v in rnd.items() if k.startswith("cpu_"))

        rounds = sorted(set(self.runs[a]) & set(self.runs[b]))
        return round(statistics.median(total(self.runs[b][i]) / total(self.runs[a][i]) for i in rounds), 3)

    def has_cpu(self, *names):
        return self.has(*names) and all(
            any(k.startswith("cpu_") for k in rnd) for n in names for rnd in self.runs[n].values()
        )

    def latency(self, name):
        out = {p: round(self.med(name, p), 3) for p in ("p50", "p99", "p999")}
        if "rate" in next(iter(self.runs[name].values())):
            out["rate_rps"] = self.med(name, "rate")
        return out


def verdict(value, target):
    if target is None:
        return ""
    op, goal = target
    met = value >= goal if op == ">=" else value <= goal
    if met:
        return f"{op} {goal}x: met"
    return f"{op} {goal}x: missed by {abs(1 - value / goal) * 100:.0f} %"


def build(suite, runs, values):
    r = Result(runs)
    out = {"suite": suite, "timestamp": values.get("meta.timestamp", "")}
    groups = defaultdict(dict)
    for key, text in values.items():
        group, _, sub = key.partition(".")
        groups[group][sub] = number(text)
    out["machine"] = groups.pop("machine", {})
    out["settings"] = {**groups.pop("settings", {}), **{k: number(v) for k, v in groups.pop("meta", {}).items()}}
    out["rps"] = {name: round(r.med(name), 1) for name in sorted(runs) if "rps" in next(iter(runs[name].values()))}
    out["runs"] = {name: [runs[name][i].get("rps") for i in sorted(runs[name])] for name in sorted(runs)}
    out["ratios"], out["targets"] = {}, {}
    for name, (a, b, target) in RATIOS.items():
        if r.has(a, b):
            out["ratios"][name] = r.ratio(a, b)
            if target:
                out["targets"][name] = f"{target[0]} {target[1]}"
    # The same ratios from CPU time per request: steadier when other work shares the
    # machine. Only between two runs through Traefik: wrk's own CPU is not counted,
    # which is fair only where it is small next to the path's.
    out["ratios_cpu"] = {
        name: r.cpu_ratio(a, b)
        for name, (a, b, _) in RATIOS.items()
        if a.startswith("gw_") and b.startswith("gw_") and r.has_cpu(a, b)
    }
    if r.has("flood_split_inc", "flood_all_inc"):
        out["ratios"]["flood_inc_p99_split_vs_all"] = r.ratio("flood_split_inc", "flood_all_inc", "p99")
    latency = {}
    for name, key in [("web_get", "web_get"), ("web_inc", "web_inc"), ("web_get_tls", "web_get_redis_tls"),
                      ("web_inc_tls", "web_inc_redis_tls"), ("lat_gw_web_get", "gateway_get_half_load"),
                      ("lat_direct_web_get", "direct_get_same_rate"),
                      ("lat_bare_constant", "bare_traefik_constant_same_rate"),
                      ("lat_nginx_constant", "nginx_constant_same_rate"),
                      ("lat_gw_web_inc", "gateway_inc_half_load"), ("flood_split_inc", "flood_inc_split"),
                      ("flood_all_inc", "flood_inc_all")]:
        if r.has(name):
            latency[key] = r.latency(name)
    for key in ("gateway_get_half_load", "gateway_inc_half_load"):
        if key in latency:
            out["targets"][f"latency_ms.{key}.p99"] = f"<= {P99_TARGET_MS}"
    out["latency_ms"] = latency
    out["rss_mb"] = groups.pop("rss_mb", {})
    variants = groups.pop("traefik_variant", {})
    if variants:
        out["traefik_variants"] = {
            variants[i]: (1.0 if i == "0" else r.ratio(f"traefik_v{i}", "traefik_v0")) for i in sorted(variants, key=int)
        }
        if all("cpu_traefik" in rnd for i in variants for rnd in runs[f"traefik_v{i}"].values()):
            # < 1: the variant spends less CPU per request than the project config.
            out["traefik_variants_cpu_per_request"] = {
                variants[i]: (1.0 if i == "0" else r.ratio(f"traefik_v{i}", "traefik_v0", "cpu_traefik"))
                for i in sorted(variants, key=int)
            }
        if all(f"traefik_lat_v{i}" in runs for i in variants):
            out["traefik_variants_latency_ms"] = {
                variants[i]: r.latency(f"traefik_lat_v{i}") for i in sorted(variants, key=int)
            }
    cpu = {}
    for name in sorted(runs):
        keys = sorted({k for rnd in runs[name].values() for k in rnd if k.startswith("cpu_")})
        if keys:
            cpu[name] = {k[4:]: round(r.med(name, k), 1) for k in keys}
    if cpu:
        out["cpu_us_per_request"] = cpu
    out.update(groups)
    return r, out


def table(r, out):
    rps, t, lat, rss = out["rps"], out["ratios"], out["latency_ms"], out["rss_mb"]
    s = out["settings"]
    lines = []

    def row(measure, value, target=""):
        lines.append(f"| {measure} | {value} | {target} |")

    def ratio_row(label, name):
        target = RATIOS.get(name, (None, None, None))[2]
        by_cpu = out["ratios_cpu"].get(name)
        cpu_text = f" (from CPU per request: {by_cpu}x)" if by_cpu is not None else ""
        row(f"**{label}**", f"**{t[name]}x**{cpu_text}", verdict(t[name], target))

    def lat_text(name):
        x = lat[name]
        return f"p50 {x['p50']} ms, p99 {x['p99']} ms, p999 {x['p999']} ms"

    lines.append(f"| measure (median of {s['rounds']} interleaved runs, -c{s['connections']}, {s['duration_s']} s each)"
                 " | value | target |")
    lines.append("|---|---|---|")
    if "web_get_vs_constant" in t:
        row("constant server GET /", f"{rps['constant_get']:,.0f} req/s", "baseline")
        w = lat["web_get"]
        row("web GET /", f"{rps['web_get']:,.0f} req/s (p50 {w['p50']} ms, p99 {w['p99']} ms)")
        ratio_row("web / constant", "web_get_vs_constant")
        row("redis-benchmark INCR (no pipelining)", f"{rps['redis_incr']:,.0f} req/s", "baseline")
        w = lat["web_inc"]
        row("web-inc /inc (INCRBY + WAIT, acknowledged)",
            f"{rps['web_inc']:,.0f} req/s (p50 {w['p50']} ms, p99 {w['p99']} ms)")
        ratio_row("web-inc / INCR", "inc_vs_redis_incr")
        row("peak RSS web / web-inc", f"{rss['web']} MB / {rss['web_inc']} MB", f"<= {RSS_TARGET_MB:g} MB")
        inc = out["increments"]
        row("increments acknowledged / final count", f"{inc['acknowledged']} / {inc['final_count']}", "acked <= final")
    if "web_get_redis_tls_vs_plain" in t:
        w = lat["web_get_redis_tls"]
        row("web GET /, Redis over TLS", f"{rps['web_get_tls']:,.0f} req/s (p50 {w['p50']} ms, p99 {w['p99']} ms)",
            f"plain TCP: {rps['web_get']:,.0f} req/s")
        ratio_row("web GET, Redis TLS / plain", "web_get_redis_tls_vs_plain")
        w = lat["web_inc_redis_tls"]
        row("web-inc /inc, Redis over TLS", f"{rps['web_inc_tls']:,.0f} req/s (p50 {w['p50']} ms, p99 {w['p99']} ms)",
            f"plain TCP: {rps['web_inc']:,.0f} req/s")
        ratio_row("web-inc /inc, Redis TLS / plain", "inc_redis_tls_vs_plain")
        row("peak RSS web / web-inc, Redis over TLS", f"{rss['web_tls']} MB / {rss['web_inc_tls']} MB",
            f"<= {RSS_TARGET_MB:g} MB")
        inc = out["increments_tls"]
        row("increments acknowledged / final count, Redis over TLS",
            f"{inc['acknowledged']} / {inc['final_count']}", "acked <= final")
    if "gateway_ceiling_vs_bare_traefik" in t:
        row("constant server direct", f"{rps['direct_constant']:,.0f} req/s", "baseline")
        row("nginx (1 worker, keep-alive upstream) in front of it", f"{rps['gw_ceiling_nginx']:,.0f} req/s",
            f"{t['nginx_proxy_vs_constant']}x direct: what a proxy hop costs")
        row("bare Traefik (fast proxy, no logs, no metrics) in front of it", f"{rps['gw_ceiling_bare']:,.0f} req/s",
            f"{t['bare_traefik_vs_constant']}x direct, {t['bare_traefik_vs_nginx']}x nginx")
        row("Traefik, project config, in front of it (the gateway's ceiling)",
            f"{rps['gw_ceiling_default']:,.0f} req/s", f"{t['traefik_ceiling_vs_constant']}x direct")
        ratio_row("gateway ceiling / bare Traefik", "gateway_ceiling_vs_bare_traefik")
        row("web GET / through the gateway", f"{rps['gw_web_get']:,.0f} req/s (direct: {rps['direct_web_get']:,.0f})",
            f"{t['gateway_vs_traefik_ceiling']}x the gateway's ceiling")
        ratio_row("gateway GET / bare Traefik", "gateway_get_vs_bare_traefik")
        row("web-inc /inc through the gateway",
            f"{rps['gw_web_inc']:,.0f} req/s (direct: {rps['direct_web_inc']:,.0f})",
            f"{t['gateway_inc_vs_direct']}x direct")
        ratio_row("gateway /inc / bare Traefik", "gateway_inc_vs_bare_traefik")
        cpu = out.get("cpu_us_per_request", {})

        def cpu_text(name):
            return ", ".join(f"{k} {v:g}" for k, v in cpu.get(name, {}).items())

        row("CPU per request, us: nginx / bare Traefik / gateway, in front of the constant server",
            f"{cpu_text('gw_ceiling_nginx')} / {cpu_text('gw_ceiling_bare')} / {cpu_text('gw_ceiling_default')}",
            "where the time goes")
        row("CPU per request, us: gateway GET / direct web GET / direct constant",
            f"{cpu_text('gw_web_get')} / {cpu_text('direct_web_get')} / {cpu_text('direct_constant')}")
        row("90/10 GET//inc mix through Traefik", f"{rps['gw_mix']:,.0f} req/s",
            f"{t['mix_vs_traefik_ceiling']}x ceiling")
        row("web x1 / x2 / x3 through Traefik",
            f"{rps['gw_web_get']:,.0f} / {rps['gw_web_get_x2']:,.0f} / {rps['gw_web_get_x3']:,.0f} req/s",
            f"x2 {t['web_x2_vs_x1']}x, x3 {t['web_x3_vs_x1']}x")
        for key, label in [("gateway_get_half_load", "GET /"), ("gateway_inc_half_load", "/inc")]:
            p99 = lat[key]["p99"]
            met = "met" if p99 <= P99_TARGET_MS else f"missed, {p99 / P99_TARGET_MS:.1f}x the target"
            row(f"{label} through Traefik at half max ({lat[key]['rate_rps']:,.0f} req/s, open loop)", lat_text(key),
                f"p99 <= {P99_TARGET_MS:g} ms: {met}")
        if "direct_get_same_rate" in lat:
            row("GET / direct at the same rate (no gateway)", lat_text("direct_get_same_rate"))
        if "bare_traefik_constant_same_rate" in lat:
            row("bare Traefik in front of the constant server, same rate", lat_text("bare_traefik_constant_same_rate"))
            row("nginx in front of the constant server, same rate", lat_text("nginx_constant_same_rate"))
        rate = s.get("flood_inc_rate")
        row(f"/inc under a GET flood ({rate} req/s), split web + web-inc", lat_text("flood_inc_split"),
            f"GET flood {rps['flood_split_get']:,.0f} req/s")
        row(f"/inc under a GET flood ({rate} req/s), one process --role all", lat_text("flood_inc_all"),
            f"GET flood {rps['flood_all_get']:,.0f} req/s")
        row("**/inc p99 split / single process**", f"**{t['flood_inc_p99_split_vs_all']}x**", "< 1: split is faster")
        row("peak RSS web (max of 3) / web-inc / --role all",
            f"{rss['stack_web_max']} / {rss['stack_web_inc']} / {rss['web_role_all']} MB", f"<= {RSS_TARGET_MB:g} MB")
        row("peak RSS Traefik project / bare; nginx worker",
            f"{rss['traefik_default']} / {rss['traefik_bare']}; {rss['nginx_worker']} MB")
        inc = out["increments_stack"]
        row("increments acknowledged / final count", f"{inc['acknowledged']} / {inc['final_count']}", "acked <= final")
    if "traefik_variants" in out:
        if "web_get_vs_constant" not in t and "gateway_ceiling_vs_bare_traefik" not in t:
            lines[0] = "| Traefik in front of the constant server | ceiling vs the project config | latency, open loop |"
        cpu = out.get("traefik_variants_cpu_per_request", {})
        for i, (label, ratio) in enumerate(out["traefik_variants"].items()):
            base = f" ({rps['traefik_v0']:,.0f} req/s)" if i == 0 else ""
            cpu_text = f", CPU per request {cpu[label]}x" if label in cpu else ""
            lat_ms = out.get("traefik_variants_latency_ms", {}).get(label)
            lat_cell = ""
            if lat_ms:
                lat_cell = f"p50 {lat_ms['p50']} ms, p99 {lat_ms['p99']} ms at {lat_ms['rate_rps']:,.0f} req/s"
            if f"traefik_v{i}" in rss:
                lat_cell += f"; peak RSS {rss[f'traefik_v{i}']} MB"
            row(f"Traefik ceiling: {label}{base}", f"{ratio}x{cpu_text}", lat_cell)
    return "\n".join(lines) + "\n"


def plot(out, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("warning: no matplotlib, no plot", file=sys.stderr)
        return
    t, rps, lat = out["ratios"], out["rps"], out["latency_ms"]
    panels = []
    ratio_names = [n for n in RATIOS if n in t]
    if ratio_names:
        panels.append("ratios")
    if "direct_constant" in rps:
        panels.append("throughput")
    if any(k in lat for k in ("gateway_get_half_load", "flood_inc_split")):
        panels.append("latency")
    if "traefik_variants" in out:
        panels.append("variants")
    if not panels:
        return
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.6 * len(panels) + 0.6), squeeze=False)
    m = out["machine"]
    fig.suptitle(f"Counter benchmarks ({out['suite']}, {out['timestamp']}, {m.get('cores')} cores, "
                 f"median of {out['settings']['rounds']} rounds)", fontsize=10)
    for ax, panel in zip(axes[:, 0], panels):
        if panel == "ratios":
            vals = [t[n] for n in ratio_names]
            colors = []
            for n in ratio_names:
                target = RATIOS[n][2]
                colors.append("grey" if not target else ("tab:green" if t[n] >= target[1] else "tab:red"))
            y = range(len(ratio_names))
            ax.barh(y, vals, color=colors)
            for i, n in enumerate(ratio_names):
                if RATIOS[n][2]:
                    ax.plot([RATIOS[n][2][1]] * 2, [i - 0.4, i + 0.4], color="black", lw=2)
                if n in out["ratios_cpu"]:
                    ax.plot(out["ratios_cpu"][n], i, marker="D", color="black", ms=4)
                ax.text(vals[i], i, f" {vals[i]:.2f}", va="center", fontsize=7)
            ax.set_yticks(list(y), ratio_names, fontsize=7)
            ax.invert_yaxis()
            ax.set_title("ratios (|: target; green met, red missed, grey context; \u25c6: from CPU per request)",
                         fontsize=9)
        elif panel == "throughput":
            names = [("direct_constant", "constant direct"), ("gw_ceiling_nginx", "nginx in front"),
                     ("gw_ceiling_bare", "bare Traefik in front"), ("gw_ceiling_default", "gateway's ceiling"),
                     ("direct_web_get", "web GET direct"),
                     ("gw_web_get", "web GET via Traefik"), ("gw_web_get_x2", "web x2 via Traefik"),
                     ("gw_web_get_x3", "web x3 via Traefik"), ("gw_mix", "90/10 mix via Traefik"),
                     ("direct_web_inc", "/inc direct"), ("gw_web_inc", "/inc via Traefik")]
            names = [(k, label) for k, label in names if k in rps]
            base = rps["direct_constant"]
            vals = [rps[k] / base for k, _ in names]
            ax.barh(range(len(names)), vals, color="tab:blue")
            for i, v in enumerate(vals):
                ax.text(v, i, f" {v:.2f}", va="center", fontsize=7)
            ax.set_yticks(range(len(names)), [label for _, label in names], fontsize=7)
            ax.invert_yaxis()
            ax.set_xscale("log")
            ax.set_title("throughput relative to the constant server, direct (= 1; log scale)", fontsize=9)
        elif panel == "latency":
            keys = [("gateway_get_half_load", "GET via Traefik\nhalf max"),
                    ("direct_get_same_rate", "GET direct\nsame rate"),
                    ("bare_traefik_constant_same_rate", "bare Traefik\n-> constant"),
                    ("nginx_constant_same_rate", "nginx\n-> constant"),
                    ("gateway_inc_half_load", "/inc via Traefik\nhalf max"),
                    ("flood_inc_split", "/inc under GET flood\nsplit"),
                    ("flood_inc_all", "/inc under GET flood\n--role all")]
            keys = [(k, label) for k, label in keys if k in lat]
            width = 0.27
            for j, p in enumerate(("p50", "p99", "p999")):
                ax.bar([i + (j - 1) * width for i in range(len(keys))], [lat[k][p] for k, _ in keys], width, label=p)
            ax.axhline(P99_TARGET_MS, color="black", lw=1, ls="--", label=f"p99 target {P99_TARGET_MS:g} ms")
            ax.set_xticks(range(len(keys)), [label for _, label in keys], fontsize=7)
            ax.set_yscale("log")
            ax.set_ylabel("ms (log)", fontsize=8)
            ax.legend(fontsize=7, ncol=4)
            ax.set_title("latency, open loop (bench/loadgen)", fontsize=9)
        elif panel == "variants":
            labels = list(out["traefik_variants"])
            series = [("ceiling (req/s)", out["traefik_variants"], "tab:purple")]
            if "traefik_variants_cpu_per_request" in out:
                series.append(("CPU per request", out["traefik_variants_cpu_per_request"], "tab:orange"))
            height = 0.8 / len(series)
            for j, (name, values, color) in enumerate(series):
                ys = [i + (j - (len(series) - 1) / 2) * height for i in range(len(labels))]
                vals = [values[k] for k in labels]
                ax.barh(ys, vals, height, color=color, label=name)
                for y, v in zip(ys, vals):
                    ax.text(v, y, f" {v:.2f}", va="center", fontsize=6)
            ax.axvline(1.0, color="black", lw=1)
            ax.set_yticks(range(len(labels)), labels, fontsize=7)
            ax.invert_yaxis()
            ax.legend(fontsize=7)
            ax.set_title("Traefik per setting, relative to the project config", fontsize=9)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main():
    suite, records, prefix = sys.argv[1:4]
    runs, values = read_records(records)
    r, out = build(suite, runs, values)
    text = table(r, out)
    with open(prefix + ".json", "w") as f:
        json.dump(out, f, indent=2)
    with open(prefix + ".md", "w") as f:
        f.write(text)
    plot(out, prefix + ".png")
    print("\n" + text)


if __name__ == "__main__":
    main()
