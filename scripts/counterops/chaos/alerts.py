"""The alerts a chaos run raised: every alert the cluster's Prometheus had
firing at some moment of the run (ALERTS{alertstate="firing"} over the run's
span, a sample a second), each with where (its instance, service, node or
file), when it fired first and last in seconds since the load started, and
whether it still fires at the end. One line a run:
  chaos <scenario>: alerts: RedisDown rediss://198.18.0.12:6380 +8..+41s; RedisFailover +9..(firing)
"""

import json
import urllib.error
import urllib.parse
import urllib.request

# The label that says where, by alert: the first of these an alert has.
WHERE = ("instance", "service", "file", "node")


def query_range(prometheus, start, end):
    """PROMETHEUS's firing ALERTS series from START to END (Unix seconds)."""
    params = urllib.parse.urlencode({"query": 'ALERTS{alertstate="firing"}', "start": f"{start:.3f}",
                                     "end": f"{end:.3f}", "step": "1"})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query_range?{params}", timeout=10) as r:
        return json.load(r)["data"]["result"]


def spans(result, start, end):
    """Each series of RESULT as {alert, where, from_s, to_s, at_end}, seconds
    since START; at_end: it still fired at the last second of the run."""
    out = []
    for series in result:
        labels, times = series["metric"], [float(t) for t, _ in series["values"]]
        where = next((labels[k] for k in WHERE if labels.get(k)), "")
        out.append({"alert": labels["alertname"], "where": where, "from_s": round(min(times) - start, 1),
                    "to_s": round(max(times) - start, 1), "at_end": max(times) >= end - 1})
    return sorted(out, key=lambda a: (a["from_s"], a["alert"], a["where"]))


def line(scenario, fired):
    """The run's alerts line; FIRED as spans() gives, or an error's text."""
    if isinstance(fired, str):
        return f"chaos {scenario}: alerts: unknown ({fired})"
    shown = [f"{a['alert']} {a['where']} +{a['from_s']:.0f}..".replace("  ", " ")
             + ("(firing)" if a["at_end"] else f"+{a['to_s']:.0f}s") for a in fired]
    return f"chaos {scenario}: alerts: {'; '.join(shown) or 'none'}"


def fired(prometheus, start, end):
    """spans() of the run from START to END at PROMETHEUS, or why not."""
    try:
        return spans(query_range(prometheus, start, end), start, end)
    except (OSError, urllib.error.URLError, ValueError, KeyError) as err:
        return f"Prometheus at {prometheus}: {err}"
