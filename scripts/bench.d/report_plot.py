"""The picture of a bench result (report.py's `out`): the ratios against
their targets, throughput relative to the constant server, latency open
loop, and the Traefik variants; matplotlib's, from the bench's venv. The
targets come from report.py: RATIOS (name: (subject, baseline, target)) and
the p99 target in ms."""

import sys


def bars(ax, labels, series):
    """Horizontal bars, top to bottom, each with its value: for each label one
    bar per series (name, {label: value}, color or a color per label)."""
    height = 0.8 / len(series)
    for j, (name, values, color) in enumerate(series):
        ys = [i + (j - (len(series) - 1) / 2) * height for i in range(len(labels))]
        ax.barh(ys, [values[k] for k in labels], height, color=color, label=name)
        for y, k in zip(ys, labels):  # smaller when bars are paired
            ax.text(values[k], y, f" {values[k]:.2f}", va="center", fontsize=7 if len(series) == 1 else 6)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.invert_yaxis()


def ratios_panel(ax, out, ratios):
    t = {n: out["ratios"][n] for n in ratios if n in out["ratios"]}
    goals = [ratios[n][2] for n in t]
    bars(ax, list(t), [(None, t, ["grey" if not g else "tab:green" if v >= g else "tab:red" for v, g in zip(t.values(), goals)])])
    for i, (name, goal) in enumerate(zip(t, goals)):
        if goal:
            ax.plot([goal] * 2, [i - 0.4, i + 0.4], color="black", lw=2)
        if name in out["ratios_cpu"]:
            ax.plot(out["ratios_cpu"][name], i, marker="D", color="black", ms=4)
    ax.set_title("ratios (|: target; green met, red missed, grey context; \u25c6: from CPU per request)", fontsize=9)


def throughput_panel(ax, out):
    rps = out["rps"]
    labels = {label: rps[k] / rps["direct_constant"] for k, label in [
        ("direct_constant", "constant direct"), ("gw_ceiling_nginx", "nginx in front"),
        ("gw_ceiling_bare", "bare Traefik in front"), ("gw_ceiling_bare_std", "bare std Traefik in front"),
        ("gw_ceiling_default", "gateway's ceiling"),
        ("direct_web_get", "web GET direct"), ("gw_web_get", "web GET via Traefik"), ("gw_web_get_x2", "web x2 via Traefik"),
        ("gw_web_get_x3", "web x3 via Traefik"), ("gw_mix", "90/10 mix via Traefik"),
        ("direct_web_inc", "/inc direct"), ("gw_web_inc", "/inc via Traefik")] if k in rps}
    bars(ax, list(labels), [(None, labels, "tab:blue")])
    ax.set_xscale("log")
    ax.set_title("throughput relative to the constant server, direct (= 1; log scale)", fontsize=9)


def latency_panel(ax, out, p99_target_ms):
    lat = out["latency_ms"]
    keys = [(k, label) for k, label in [
        ("gateway_get_half_load", "GET via Traefik\nhalf max"), ("direct_get_same_rate", "GET direct\nsame rate"),
        ("bare_std_traefik_web_same_rate", "bare std\n-> web"), ("gateway_memory_same_rate", "gateway\n-> memory"),
        ("gateway_constant_same_rate", "gateway\n-> constant"), ("bare_std_traefik_constant_same_rate", "bare std\n-> constant"),
        ("bare_traefik_constant_same_rate", "bare Traefik\n-> constant"), ("nginx_constant_same_rate", "nginx\n-> constant"),
        ("gateway_inc_half_load", "/inc via Traefik\nhalf max"), ("flood_inc_split", "/inc under GET flood\nsplit"),
        ("flood_inc_all", "/inc under GET flood\n--role all")] if k in lat]
    width = 0.27
    for j, p in enumerate(("p50", "p99", "p999")):
        ax.bar([i + (j - 1) * width for i in range(len(keys))], [lat[k][p] for k, _ in keys], width, label=p)
    ax.axhline(p99_target_ms, color="black", lw=1, ls="--", label=f"p99 target {p99_target_ms:g} ms")
    ax.set_xticks(range(len(keys)), [label.replace("\n", " ") for _, label in keys], fontsize=6, rotation=25, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("ms (log)", fontsize=8)
    ax.legend(fontsize=7, ncol=4)
    ax.set_title("latency, open loop (bench/loadgen)", fontsize=9)


def variants_panel(ax, out):
    series = [("ceiling (req/s)", out["traefik_variants"], "tab:purple")]
    if "traefik_variants_cpu_per_request" in out:
        series.append(("CPU per request", out["traefik_variants_cpu_per_request"], "tab:orange"))
    bars(ax, list(out["traefik_variants"]), series)
    ax.axvline(1.0, color="black", lw=1)
    ax.legend(fontsize=7)
    ax.set_title("Traefik per setting, relative to the project config", fontsize=9)


def plot(out, path, ratios, p99_target_ms):
    try:
        from matplotlib.figure import Figure
    except ImportError:  # report.py run by hand outside the bench's venv
        print("warning: no matplotlib, no plot", file=sys.stderr)
        return
    panels = [panel for panel, shown in [
        (ratios_panel, ratios.keys() & out["ratios"].keys()), (throughput_panel, "direct_constant" in out["rps"]),
        (latency_panel, {"gateway_get_half_load", "flood_inc_split"} & out["latency_ms"].keys()),
        (variants_panel, "traefik_variants" in out)] if shown]
    # The ratios panel has a row per ratio: taller than the others.
    heights = [1.7 if panel is ratios_panel else 1 for panel in panels]
    fig = Figure(figsize=(8, 2.6 * sum(heights) + 0.6))
    m = out["machine"]
    fig.suptitle(f"Counter benchmarks ({out['suite']}, {out['timestamp']}, {m.get('cores')} cores, "
                 f"median of {out['settings']['rounds']} rounds)", fontsize=10)
    axes = fig.subplots(len(panels), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    extra = {ratios_panel: (ratios,), latency_panel: (p99_target_ms,)}
    for ax, panel in zip(axes, panels):
        panel(ax, out, *extra.get(panel, ()))
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
