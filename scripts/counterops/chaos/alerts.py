"""The alerts a chaos run raised: every alert the cluster's Prometheus had
firing at some moment of the run (ALERTS{alertstate="firing"} over the run's
span, a sample a second), each with where (its instance, service, node or
file), when it fired first and last in seconds since the load started, and
whether it still fires at the end. One line a run:
  chaos <scenario>: alerts: RedisDown rediss://198.18.0.12:6380 +8..+41s; RedisFailover +9..(firing)
Only what the Prometheus asked has written since it started: when Nomad
moved it during the run (a drain, a reboot), each machine keeps its own
history, and the samples from before its start are another stint's, so
the line says from when it knows:
  chaos <scenario>: alerts since +212s (Prometheus started then): ...
"""

import json
import urllib.error
import urllib.parse
import urllib.request

from ..logs import parse_time

# The label that says where, by alert: the first of these an alert has.
WHERE = ("instance", "service", "file", "node")
# The rules' evaluation_interval (prometheus/prometheus.yml): an alert that
# still fires has a sample at most this old.
EVALUATION_S = 5


def get(prometheus, path):
    with urllib.request.urlopen(f"{prometheus}{path}", timeout=10) as r:
        return json.load(r)["data"]


def query_range(prometheus, start, end):
    """PROMETHEUS's firing ALERTS series from START to END (Unix seconds),
    each value the time of the sample it found (timestamp()): a sample
    found at a later step, from within the lookback, keeps its own time."""
    params = urllib.parse.urlencode({"query": 'timestamp(ALERTS{alertstate="firing"})', "start": f"{start:.3f}",
                                     "end": f"{end:.3f}", "step": "1"})
    return get(prometheus, f"/api/v1/query_range?{params}")["result"]


def started(prometheus):
    """When PROMETHEUS's process started (Unix seconds)."""
    return parse_time(get(prometheus, "/api/v1/status/runtimeinfo")["startTime"]).timestamp()


def spans(result, start, end, since=None):
    """Each series of RESULT as {alert, where, from_s, to_s, at_end}, seconds
    since START, from its samples written at SINCE or later (default: START);
    at_end: it still fired at the end of the run (its last evaluation)."""
    out = []
    for series in result:
        labels = series["metric"]
        times = {float(t) for _, t in series["values"] if float(t) >= (since or start)}
        if not times:
            continue
        where = next((labels[k] for k in WHERE if labels.get(k)), "")
        out.append({"alert": labels["alertname"], "where": where, "from_s": round(min(times) - start, 1),
                    "to_s": round(max(times) - start, 1), "at_end": max(times) >= end - EVALUATION_S - 1})
    return sorted(out, key=lambda a: (a["from_s"], a["alert"], a["where"]))


def line(scenario, fired):
    """The run's alerts line; FIRED as fired() gives: {since_s, alerts} or an
    error's text."""
    if isinstance(fired, str):
        return f"chaos {scenario}: alerts: unknown ({fired})"
    shown = [f"{a['alert']} {a['where']} +{a['from_s']:.0f}..".replace("  ", " ")
             + ("(firing)" if a["at_end"] else f"+{a['to_s']:.0f}s") for a in fired["alerts"]]
    since = f" since +{fired['since_s']:.0f}s (Prometheus started then)" if fired["since_s"] > 0 else ""
    return f"chaos {scenario}: alerts{since}: {'; '.join(shown) or 'none'}"


def fired(prometheus, start, end):
    """{since_s, alerts}: spans() of the run from START to END at PROMETHEUS,
    from its start if that came later (since_s, else 0); or why not."""
    try:
        since = max(start, started(prometheus))
        return {"since_s": round(since - start, 1),
                "alerts": spans(query_range(prometheus, start, end), start, end, since)}
    except (OSError, urllib.error.URLError, ValueError, KeyError, AttributeError) as err:
        return f"Prometheus at {prometheus}: {err}"
