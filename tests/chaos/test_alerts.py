"""The alerts a chaos run raised, from Prometheus' ALERTS over the run's
span: each series as where, first and last second since the load started,
and whether it still fired at the end; the line scripts/chaos prints."""

from counterops.chaos import alerts

START = 1000.0


def series(name, times, **labels):
    return {"metric": {"__name__": "ALERTS", "alertname": name, "alertstate": "firing", **labels},
            "values": [[START + t, str(START + t)] for t in times]}


def test_each_alert_says_where_and_when_it_fired_and_if_it_still_fires():
    result = [series("RedisFailover", [9, 10, 11, 40], severity="info"),
              series("RedisDown", [8, 9, 41], instance="rediss://198.18.0.12:6380", job="redis", node="m2"),
              series("CertificateExpiresSoon", [2, 3], file="web.pem", node="m1")]
    got = alerts.spans(result, START, START + 40.4)
    assert got == [
        {"alert": "CertificateExpiresSoon", "where": "web.pem", "from_s": 2.0, "to_s": 3.0, "at_end": False},
        {"alert": "RedisDown", "where": "rediss://198.18.0.12:6380", "from_s": 8.0, "to_s": 41.0, "at_end": True},
        {"alert": "RedisFailover", "where": "", "from_s": 9.0, "to_s": 40.0, "at_end": True},
    ]
    assert alerts.line("primary-kill", {"since_s": 0, "alerts": got}) == (
        "chaos primary-kill: alerts: CertificateExpiresSoon web.pem +2..+3s; "
        "RedisDown rediss://198.18.0.12:6380 +8..(firing); RedisFailover +9..(firing)")


def test_a_quiet_run_and_an_unreachable_prometheus_are_said_as_such():
    quiet = {"since_s": 0, "alerts": alerts.spans([], START, START + 30)}
    assert alerts.line("rolling-deploy", quiet) == "chaos rolling-deploy: alerts: none"
    got = alerts.fired("http://127.0.0.1:9", START, START + 30)
    assert isinstance(got, str) and got.startswith("Prometheus at http://127.0.0.1:9:")
    assert alerts.line("machine-loss", got).startswith("chaos machine-loss: alerts: unknown (Prometheus at ")


def test_samples_from_before_prometheus_started_are_another_stints_and_left_out():
    """Nomad moved Prometheus 200 s into the run: what it finds from before
    (its machine's history, its last samples still in the lookback) is not
    this run's. A sample's own time decides, not the step that found it."""
    stale = {"metric": {"alertname": "RedisDown", "instance": "rediss://198.18.0.11:6380"},
             "values": [[START + t, str(START - 50)] for t in range(200, 240)]}
    result = [stale, series("RedisFailover", [190, 205, 230])]
    got = alerts.spans(result, START, START + 240, since=START + 200)
    assert got == [{"alert": "RedisFailover", "where": "", "from_s": 205.0, "to_s": 230.0, "at_end": False}]
    # The rules are evaluated every 5 s: a sample 4 s old still fires.
    assert alerts.spans([series("RedisDown", [100, 236])], START, START + 240)[0]["at_end"]
    assert alerts.line("rotate-ca", {"since_s": 200.0, "alerts": got}) == (
        "chaos rotate-ca: alerts since +200s (Prometheus started then): RedisFailover +205..+230s")
