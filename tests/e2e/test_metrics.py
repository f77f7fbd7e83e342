"""Metrics collected and alerts raised on the local stack: the prometheus job
scrapes every component it finds in Consul's catalog; real faults fire the
alerts that name them (held by Alertmanager, listed by scripts/status),
which resolve when the fault ends: a stopped replica, then primary
(RedisDown, RedisReplicaLag, the 503s of web-inc and the gateway:
ServiceErrors and GatewayErrors, web-inc's slow refusals: ServiceSlow,
RedisNoPrimary), a stopped exporter
(TargetDown), a killed task (AllocationRestarting); and the samples
outlive a restart of Prometheus."""

import os
import re
import signal
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from conftest import CONSUL, GATEWAY, NOMAD, REPO, get_json, redis, run, wait_for
from test_local_stack import pid_listening_on, web_servers

PROMETHEUS = "http://127.0.0.1:9090"
ALERTMANAGER = "http://127.0.0.1:9093"
PRIMARY_PORT, REPLICA_PORT = 6380, 6381
NODE_EXPORTER_PORT = 9100


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


class Load:
    """What clients do meanwhile: GET / and POST /inc through the gateway,
    and POST /inc straight to web-inc as a client on its network could, each
    URL from its own thread, five requests a second at most (a refused write
    takes web-inc 3 s: its WAIT), until stopped or 300 s (1,500 requests a
    URL) at most: the codes each URL got."""

    def __init__(self, *urls):
        self.done, self.codes = threading.Event(), {f"{method} {url}": {} for method, url in urls}
        self.threads = [threading.Thread(target=self.send, args=(method, url), daemon=True) for method, url in urls]
        for thread in self.threads:
            thread.start()

    def send(self, method, url):
        deadline, counts = time.monotonic() + 300, self.codes[f"{method} {url}"]
        for _ in range(1500):
            if self.done.is_set() or time.monotonic() > deadline:
                return
            try:
                with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=5) as r:
                    code = r.status
            except urllib.error.HTTPError as err:
                code = err.code
            except OSError:
                code = "no answer"
            counts[code] = counts.get(code, 0) + 1
            self.done.wait(0.2)

    def stop(self):
        self.done.set()
        for thread in self.threads:
            thread.join()


def firing(name):
    return [a for a in alerts(name) if a["state"] == "firing"]


def service_url(name):
    entries = get_json(f"{CONSUL}/v1/catalog/service/{name}")
    return f"http://{entries[0]['ServiceAddress']}:{entries[0]['ServicePort']}"


def test_a_stopped_store_and_exporter_fire_the_alerts_that_name_them_until_they_answer_again():
    """Local Redis has one replica. Stopped (SIGSTOP), the primary keeps it
    on its list with a growing lag and refuses writes (min-replicas-to-write),
    web-inc answers 503 after its WAIT (3 s), the services turn unready and
    the gateway answers 503 itself; the node exporter is stopped too. Then the primary stops as
    well: no primary. Each fault fires the alert that names it; all resolve
    once everything runs again (the primary first, so Sentinel has nothing
    to promote) and the errors age out of the last minute."""
    first = ("RedisDown", "RedisReplicaLag", "GatewayErrors", "ServiceErrors", "ServiceSlow", "TargetDown")
    expected = (*first, "RedisNoPrimary")
    # An earlier test's faults may still be in the last minute's rates.
    wait_for("none of these alerts before the fault", lambda: not any(alerts(n) for n in expected), timeout=120)
    load = Load(("GET", f"{GATEWAY}/"), ("POST", f"{GATEWAY}/inc"), ("POST", f"{service_url('web-inc')}/inc"))
    try:
        replica, exporter, primary = (pid_listening_on(port) for port in (REPLICA_PORT, NODE_EXPORTER_PORT, PRIMARY_PORT))
        stopped = []
        try:
            for pid in (replica, exporter):
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
            # RedisReplicaLag ends by itself once the primary drops the replica
            # (repl-timeout, 60 s): each counts from the moment it fired.
            seen = {}

            def all_fired():
                seen.update({name: now for name in first if name not in seen and (now := firing(name))})
                return len(seen) == len(first)

            wait_for(f"{', '.join(first)} to fire", all_fired, timeout=150, interval=1)
            labels = {name: [a["labels"] for a in fired] for name, fired in seen.items()}
            assert [a["instance"] for a in labels["RedisDown"]] == [f"redis://127.0.0.1:{REPLICA_PORT}"], labels
            assert [a["instance"] for a in labels["RedisReplicaLag"]] == [f"redis://127.0.0.1:{PRIMARY_PORT}"], labels
            assert [a["node"] for a in labels["GatewayErrors"]] == ["local"], labels
            assert [a["service"] for a in labels["ServiceErrors"]] == ["web-inc"], labels
            assert "web-inc" in [a["service"] for a in labels["ServiceSlow"]], labels
            assert [a["job"] for a in labels["TargetDown"]] == ["node"], labels
            # Prometheus hands them to Alertmanager; scripts/status lists them.
            wait_for("Alertmanager to hold RedisDown", lambda: any(
                a["labels"]["alertname"] == "RedisDown" for a in get_json(f"{ALERTMANAGER}/api/v2/alerts")), timeout=30)
            status = run("scripts/status", check=False).stdout
            listed = {line.split()[0] for line in status.splitlines() if line.split()[1:2] == ["firing"]}
            assert {"RedisDown", "GatewayErrors", "ServiceErrors", "TargetDown"} <= listed, status
            os.kill(primary, signal.SIGSTOP)
            stopped.append(primary)
            wait_for("RedisNoPrimary to fire", lambda: firing("RedisNoPrimary"), timeout=60, interval=1)
        finally:
            try:
                if primary in stopped:
                    os.kill(primary, signal.SIGCONT)
                    with redis(PRIMARY_PORT) as primary_node:
                        assert primary_node.call("PING") == "PONG"
            finally:
                for pid in stopped:
                    os.kill(pid, signal.SIGCONT)
        wait_for("every alert of the faults to resolve", lambda: not any(alerts(n) for n in expected),
                 timeout=120, interval=1)
    finally:
        load.stop()  # even when a fault's alert never came
    print("answers during the test:", load.codes)
    # The stack was whole before, and is again: the same primary.
    assert [r["metric"]["master_address"] for r in query("redis_sentinel_master_status")] == [
        f"127.0.0.1:{PRIMARY_PORT}"]
    assert all(codes.get(503) and codes.get(200) for codes in load.codes.values()), load.codes


def test_a_killed_task_fires_allocation_restarting_naming_its_allocation():
    """kill -9 one web process: Nomad restarts it, and the restart fires the
    alert for that allocation (a first restart too: its counter appears
    already at 1). It stays 5 minutes (the rule's window): not waited for
    here; prometheus/alerts_test.yml checks it ends."""
    servers = wait_for("two web servers in Traefik", lambda: len(web_servers()) == 2 and web_servers())
    # One Nomad will restart: web's restart policy allows 2 in 30 minutes,
    # then fails the allocation and places a new one (no restart to report).
    restarts = {a["ID"]: a["TaskStates"]["web"]["Restarts"] for a in get_json(f"{NOMAD}/v1/job/web/allocations")
                if a["ClientStatus"] == "running"}
    allocs = {re.match(r"_nomad-task-([0-9a-f-]{36})-", e["ServiceID"]).group(1): e["ServicePort"]
              for e in get_json(f"{CONSUL}/v1/catalog/service/web")}
    alloc, port = next((a, port) for a, port in sorted(allocs.items()) if restarts.get(a, 2) < 2)
    victim = next(url for url in servers if url.endswith(f":{port}"))
    os.kill(pid_listening_on(port), signal.SIGKILL)
    fired = wait_for(f"AllocationRestarting for {alloc}", lambda: [
        a for a in firing("AllocationRestarting") if a["labels"].get("alloc_id") == alloc], timeout=60, interval=1)
    assert (fired[0]["labels"]["exported_job"], fired[0]["labels"]["task"]) == ("web", "web"), fired
    wait_for("the killed web back in Traefik", lambda: victim in web_servers() or len(web_servers()) == 2,
             timeout=60)


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
