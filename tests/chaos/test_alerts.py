"""The alerts a chaos run raised, from Prometheus' ALERTS over the run's
span: each series as where, first and last second since the load started,
and whether it still fired at the end; the line scripts/chaos prints."""

from counterops.chaos import alerts

START = 1000.0


def series(name, times, **labels):
    return {"metric": {"__name__": "ALERTS", "alertname": name, "alertstate": "firing", **labels},
            "values": [[START + t, "1"] for t in times]}


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
    assert alerts.line("primary-kill", got) == (
        "chaos primary-kill: alerts: CertificateExpiresSoon web.pem +2..+3s; "
        "RedisDown rediss://198.18.0.12:6380 +8..(firing); RedisFailover +9..(firing)")


def test_a_quiet_run_and_an_unreachable_prometheus_are_said_as_such():
    assert alerts.line("rolling-deploy", alerts.spans([], START, START + 30)) == "chaos rolling-deploy: alerts: none"
    got = alerts.fired("http://127.0.0.1:9", START, START + 30)
    assert isinstance(got, str) and got.startswith("Prometheus at http://127.0.0.1:9:")
    assert alerts.line("machine-loss", got).startswith("chaos machine-loss: alerts: unknown (Prometheus at ")
