"""Metrics on the cluster: the prometheus job scrapes every component on
every host over TLS (each verified against its role's CA and name, with
Prometheus' client certificate where one is asked for), every target
answers, every alert rule is loaded, and the exporters refuse a client
without a certificate of the services CA."""

import calendar
import json
import re
import ssl
import subprocess
import time
import urllib.parse
import urllib.request

from cluster import REPO, TLS, eventually

# Per host, the components Prometheus scrapes there: one target each.
PER_HOST = ("node", "consul", "nomad", "traefik", "redis")


def prometheus(cluster):
    """Prometheus' base URL: its service's address in Consul's catalog."""
    entries = cluster.consul_api("/v1/health/service/prometheus?passing")
    assert len(entries) == 1, f"passing prometheus instances: {entries}"
    return f"http://{entries[0]['Service']['Address']}:{entries[0]['Service']['Port']}"


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)["data"]


def test_prometheus_scrapes_every_component_on_every_host_over_tls(cluster):
    base = prometheus(cluster)

    def all_up():
        ts = get(f"{base}/api/v1/targets")["activeTargets"]
        down = [(t["labels"].get("instance"), t["lastError"]) for t in ts if t["health"] != "up"]
        assert ts and not down, f"targets not up: {down}"
        return ts

    targets = eventually(all_up, 120, "every Prometheus target up")
    by_job = {}
    for t in targets:
        by_job.setdefault(t["labels"]["job"], []).append(t)
    print("targets:", {job: len(ts) for job, ts in sorted(by_job.items())})
    addrs = set(cluster.addr.values())
    for job in PER_HOST:
        hosts = {re.sub(r"^\w+://|:\d+$", "", t["labels"]["instance"]) for t in by_job.get(job, [])}
        assert hosts == addrs, f"{job}: targets on {sorted(hosts)}, hosts {sorted(addrs)}"
    # Over TLS, each with its role's CA: https (rediss for Redis) everywhere
    # but Traefik's admin entrypoint and Prometheus itself.
    for job in ("services", "node", "consul", "nomad", "redis"):
        assert all(t["scrapeUrl"].startswith("https://") for t in by_job[job]), job
    assert all(t["labels"]["instance"].startswith("rediss://") for t in by_job["redis"])
    sentinels = {t["labels"]["instance"] for t in by_job["redis"] if t["labels"].get("sentinel") == "yes"}
    assert sentinels == {f"rediss://{cluster.addr[s]}:26380" for s in cluster.servers}, sentinels
    services = {t["labels"]["service"] for t in by_job["services"]}
    assert services == {"web", "web-inc"}, services
    webs = {t["labels"]["instance"].split(":")[0] for t in by_job["services"] if t["labels"]["service"] == "web"}
    assert webs == addrs, f"web scraped on {sorted(webs)}, hosts {sorted(addrs)}"
    rules = [r for g in get(f"{base}/api/v1/rules")["groups"] for r in g["rules"]]
    defined = re.findall(r"^\s*- alert: (\w+)$", (REPO / "prometheus/alerts.yml").read_text(), re.M)
    assert sorted(r["name"] for r in rules) == sorted(defined) and all(r["health"] == "ok" for r in rules)
    # Each host's figures are there, by machine: what the dashboard reads.
    query = urllib.parse.urlencode({"query": "count by (node) (node_uname_info)"})
    nodes = {r["metric"]["node"] for r in get(f"{base}/api/v1/query?{query}")["result"]}
    assert nodes == set(cluster.hosts), nodes


def test_the_exporters_answer_prometheus_certificate_alone(cluster):
    host = cluster.hosts[0]
    addr = cluster.addr[host]
    for port, path in ((9100, "/metrics"), (9121, "/scrape?target=rediss://" + addr + ":6380")):
        url = f"https://{addr}:{port}{path}"
        anonymous = ssl.create_default_context(cafile=str(TLS / "services-ca.pem"))
        anonymous.check_hostname = False
        try:
            urllib.request.urlopen(url, timeout=5, context=anonymous)
            raise AssertionError(f"{url} answered a client without a certificate")
        except (ssl.SSLError, urllib.error.URLError, ConnectionResetError) as e:
            print(f"{url} without a certificate: {e}")
        # The operators' client certificate of the services CA passes (the
        # check can fail): the same CA as Prometheus'.
        ok = ssl.create_default_context(cafile=str(TLS / "services-ca.pem"))
        ok.check_hostname = False
        ok.load_cert_chain(TLS / "cli-services.pem", TLS / "cli-services-key.pem")
        with urllib.request.urlopen(url, timeout=10, context=ok) as r:
            body = r.read().decode()
        assert r.status == 200 and ("node_uname_info" in body or "redis_up 1" in body), body[:300]


def test_every_gateway_serves_the_dashboard_on_its_loopback_entrypoint_alone(cluster):
    """Traefik's dashboard entrypoint (127.0.0.1:8079) of every machine routes
    /consoles/counter.html to Prometheus, wherever it runs; the public
    gateway does not."""
    for host in cluster.hosts:
        page = cluster.ssh(host, "curl -sf --max-time 10 http://127.0.0.1:8079/consoles/counter.html", check=False)
        assert page.returncode == 0 and "<title>Counter: the whole stack</title>" in page.stdout, (host, page.stderr)
        public = cluster.ssh(host, f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 10 "
                                   f"http://{cluster.addr[host]}:8080/consoles/counter.html", check=False)
        assert public.stdout.strip() == "404", (host, public.stdout)


def not_after(pem):
    end = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", str(pem)],
                         capture_output=True, text=True, check=True).stdout.strip().removeprefix("notAfter=")
    return calendar.timegm(time.strptime(end, "%b %d %H:%M:%S %Y GMT"))


def test_every_host_reports_when_each_of_its_certificates_expires(cluster):
    """The exporters' certificates task: every host's CAs and leaves, each
    at the notAfter of the file the deploy installed (CertificateExpiresSoon
    reads it; prometheus/alerts_test.yml tests the rule)."""
    base = prometheus(cluster)

    def reported():
        query = urllib.parse.urlencode({"query": "counter_certificate_not_after_seconds"})
        got = {(r["metric"]["node"], r["metric"]["file"]): int(float(r["value"][1]))
               for r in get(f"{base}/api/v1/query?{query}")["result"]}
        assert {node for node, _ in got} == set(cluster.hosts), sorted(got)
        return got

    got = eventually(reported, 90, "every host's certificates in Prometheus")
    for host in cluster.hosts:
        files = {f for node, f in got if node == host}
        assert {"consul.pem", "nomad.pem", "redis.pem", "web.pem", "consul-ca.pem", "redis-ca.pem"} <= files, files
        assert got[(host, "consul.pem")] == not_after(TLS / f"{host}-consul.pem"), host
        assert got[(host, "redis-ca.pem")] == not_after(TLS / "redis-ca.pem"), host
