"""Metrics collected and alerts raised on the local stack: the prometheus job
scrapes every component it finds in Consul's catalog, a Redis that stops
answering fires RedisDown (held by Alertmanager, listed by scripts/status)
which resolves when it answers again, and the samples outlive a restart of
Prometheus."""

import os
import re
import signal
import time
import urllib.parse

from conftest import REPO, get_json, run, wait_for
from test_local_stack import pid_listening_on

PROMETHEUS = "http://127.0.0.1:9090"
ALERTMANAGER = "http://127.0.0.1:9093"
REPLICA_PORT = 6381


def targets():
    return get_json(f"{PROMETHEUS}/api/v1/targets")["data"]["activeTargets"]


def alerts(name):
    return [a for a in get_json(f"{PROMETHEUS}/api/v1/alerts")["data"]["alerts"] if a["labels"]["alertname"] == name]


def query(expr, at=None):
    params = {"query": expr, **({"time": f"{at:.3f}"} if at else {})}
    return get_json(f"{PROMETHEUS}/api/v1/query?{urllib.parse.urlencode(params)}")["data"]["result"]


def test_prometheus_scrapes_every_component_and_each_answers():
    def all_up():
        ts = targets()
        return ts if ts and all(t["health"] == "up" for t in ts) else None

    ts = wait_for("every target up", all_up, timeout=60)
    jobs = {}
    for t in ts:
        jobs.setdefault(t["labels"]["job"], []).append(t["labels"])
    assert set(jobs) == {"prometheus", "services", "traefik", "nomad", "consul", "node", "redis"}, jobs
    assert {t["service"] for t in jobs["services"]} == {"web", "web-inc"}
    # Both Redis nodes and the Sentinel (its view, as the same metrics user).
    assert sorted(t["instance"] for t in jobs["redis"]) == [
        "redis://127.0.0.1:26380", "redis://127.0.0.1:6380", "redis://127.0.0.1:6381"]
    # What the alerts read is there: each service's requests, both Redis
    # roles, Consul's and Nomad's autopilot.
    assert {r["metric"]["service"] for r in query("counter_http_requests_total")} == {"web", "web-inc"}
    assert {r["metric"]["role"] for r in query('redis_instance_info{redis_mode!="sentinel"}')} == {"master", "slave"}
    assert [r["metric"]["master_address"] for r in query("redis_sentinel_master_status")] == ["127.0.0.1:6380"]
    assert query("consul_autopilot_healthy") and query("nomad_nomad_autopilot_healthy")
    # Every rule of prometheus/alerts.yml loaded, none failing to evaluate.
    rules = [r for g in get_json(f"{PROMETHEUS}/api/v1/rules")["data"]["groups"] for r in g["rules"]]
    defined = re.findall(r"^\s*- alert: (\w+)$", (REPO / "prometheus/alerts.yml").read_text(), re.M)
    assert sorted(r["name"] for r in rules) == sorted(defined) and all(r["health"] == "ok" for r in rules)


def test_a_redis_that_stops_answering_fires_redis_down_until_it_answers_again():
    assert not alerts("RedisDown"), "RedisDown fires before the fault"
    pid = pid_listening_on(REPLICA_PORT)
    os.kill(pid, signal.SIGSTOP)
    try:
        firing = wait_for("RedisDown to fire", lambda: [a for a in alerts("RedisDown") if a["state"] == "firing"],
                          timeout=60, interval=1)
        assert firing[0]["labels"]["instance"] == f"redis://127.0.0.1:{REPLICA_PORT}"
        # Prometheus hands it to Alertmanager; scripts/status lists it.
        wait_for("Alertmanager to hold RedisDown", lambda: any(
            a["labels"]["alertname"] == "RedisDown" for a in get_json(f"{ALERTMANAGER}/api/v2/alerts")), timeout=30)
        status = run("scripts/status", check=False).stdout
        assert any(line.split()[:2] == ["RedisDown", "firing"] for line in status.splitlines()), status
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for("RedisDown to resolve", lambda: not alerts("RedisDown"), timeout=60, interval=1)


def answering(fn):
    """FN's value, or None while Prometheus does not answer (restarting)."""
    def call():
        try:
            return fn()
        except (OSError, AssertionError):
            return None
    return call


def test_the_samples_outlive_a_restart_of_prometheus():
    before = time.time()
    wait_for("a sample of Prometheus' own up", lambda: query('up{job="prometheus"}', before - 1), timeout=30)
    alloc = run("nomad", "job", "allocs", "-t", '{{range .}}{{if eq .ClientStatus "running"}}{{.ID}}{{end}}{{end}}',
                "prometheus").stdout.strip()
    run("nomad", "alloc", "restart", alloc, "prometheus")
    wait_for("Prometheus ready again", answering(lambda: query("up") and targets()), timeout=60, interval=1)
    assert query('up{job="prometheus"}', before - 1), "the samples from before the restart are gone"
