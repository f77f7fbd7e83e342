"""A chaos run as a picture: answers per second through the gateway (reads
and increments, successes and errors), which node was the Redis primary, and
when the fault started, when increments were acknowledged again and when it
was healed. Written next to the run's JSON record in $COUNTER_CACHE/chaos/
(outside the repository), one PNG a scenario.

    python -m counterops.chaos.timeline RECORD.json   # draws RECORD.png again
"""

import json
import sys
import time
from pathlib import Path

from ..common import log
from ..target import CACHE

RESULTS = CACHE / "chaos"
# Colours: reads blue, increments green, their errors red and orange.
SERIES = [("get_ok", "reads /s", "tab:blue"), ("inc_ok", "increments /s", "tab:green"),
          ("get_err", "failed reads /s", "tab:red"), ("inc_err", "failed increments /s", "tab:orange")]


def record(scenario, verdict_line, load, marks, primaries, alerts=None):
    """Writes RESULTS/<stamp>-<scenario>.json and .png; returns the PNG's path.
    LOAD: the load generator's result (its timeline); MARKS: {event: seconds
    since the load started}; PRIMARIES: [(seconds, address or None)];
    ALERTS: the alerts the run raised (chaos/alerts.py), kept in the record."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{scenario}.json"
    path.write_text(json.dumps({"scenario": scenario, "verdict": verdict_line, "timeline": load.get("timeline"),
                                "marks": marks, "primaries": primaries, "alerts": alerts}, indent=1))
    return draw(path)


def primary_spans(primaries, end):
    """[(start, stop, address or None)]: each stretch with one primary."""
    spans = []
    for (at, addr), nxt in zip(primaries, [*primaries[1:], (end, None)]):
        if spans and spans[-1][2] == addr:
            spans[-1] = (spans[-1][0], nxt[0], addr)
        else:
            spans.append((at, nxt[0], addr))
    return spans


def draw(path):
    """PATH (a record) as PATH.png; None (and a warning) without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        log("warning: no matplotlib in this Python: the timeline stays JSON only (scripts/chaos has it)")
        return None
    rec = json.loads(Path(path).read_text())
    line, marks = rec["timeline"], rec["marks"]
    width = line["bin_s"]
    end = len(line["get_ok"]) * width
    fig = Figure(figsize=(9, 4.2))
    ax, roles = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [4, 1]})
    xs = [i * width for i in range(len(line["get_ok"]))]
    for key, label, colour in SERIES:
        ax.plot(xs, [n / width for n in line[key]], label=label, color=colour, lw=1.2, drawstyle="steps-post")
    top = ax.get_ylim()[1]
    for i, (event, colour) in enumerate((("fault", "black"), ("recovered", "tab:green"), ("healed", "tab:purple"))):
        if marks.get(event) is not None:
            for a in (ax, roles):
                a.axvline(marks[event], color=colour, ls="--", lw=1)
            # One below the other: recovery and healing often come together.
            ax.text(marks[event], top * (1 - 0.07 * i), f" {event}", fontsize=7, va="top", color=colour)
    ax.set_ylabel("per second", fontsize=8)
    ax.legend(fontsize=7, ncol=4, loc="lower left")
    ax.set_title(rec["verdict"].replace(" | ", "\n"), fontsize=7)  # what users saw, then the counts
    names = sorted({a for _, a in rec["primaries"] if a})
    for start, stop, addr in primary_spans(rec["primaries"], end):
        roles.barh(0, stop - start, left=start, color=f"C{names.index(addr) + 4}" if addr else "lightgrey",
                   edgecolor="white")
        roles.text(start + (stop - start) / 2, 0, addr or "none", ha="center", va="center", fontsize=7)
    roles.set_yticks([0], ["Redis primary"], fontsize=8)
    roles.set_xlabel("seconds since the load started", fontsize=8)
    for a in (ax, roles):
        a.tick_params(labelsize=7)
        a.set_xlim(0, end)
    fig.suptitle(f"chaos {rec['scenario']}", fontsize=10)
    fig.tight_layout()
    png = Path(path).with_suffix(".png")
    fig.savefig(png, dpi=90)
    return png


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].endswith(".json"):
        sys.exit(__doc__)
    print(draw(sys.argv[1]))
