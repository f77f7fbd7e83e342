"""Alerts caused by real faults on the cluster, each seen firing in the
cluster's Prometheus with the words that name the fault, then resolving
when the fault ends: a certificate near its expiry on one host
(CertificateExpiresSoon), and a Consul server out of contact
(ConsulQuorumAtRisk, and its agent's TargetDown). The e2e suite causes
others (tests/e2e/test_metrics.py), test_3_dashboard RedisFailover;
prometheus/alerts_test.yml tests every rule on its fault's series."""

import json
import subprocess
import tempfile
import urllib.request
from pathlib import Path

from cluster import eventually, run
from test_2_metrics import prometheus

from counterops.chaos.faults import leader_host

PROBE = "expiry-probe.pem"


def alerts(base, name):
    with urllib.request.urlopen(f"{base}/api/v1/alerts", timeout=10) as r:
        return [a for a in json.load(r)["data"]["alerts"] if a["labels"]["alertname"] == name]


def firing(base, name, **labels):
    return [a for a in alerts(base, name)
            if a["state"] == "firing" and all(a["labels"].get(k) == v for k, v in labels.items())]


def restart_certificates_task(cluster, host):
    """The certificates task reads the host's files at its start, then every
    5 minutes: restarted, it reads them now."""
    alloc = next(a["ID"] for a in cluster.running_allocs("exporters") if a["NodeName"] == host)
    cluster.nomad("alloc", "restart", alloc, "certificates")


def test_a_certificate_near_its_expiry_fires_certificate_expires_soon_until_it_is_gone(cluster):
    base = prometheus(cluster)
    host = cluster.hosts[-1]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", f"{tmp}/key.pem", "-out", f"{tmp}/cert.pem", "-days", "2", "-subj", "/CN=probe"],
                       check=True, capture_output=True)
        pem = Path(tmp, "cert.pem").read_text()
    run(["ssh", *cluster.t.hosts[host].ssh_args, f"install -m 0644 /dev/stdin /etc/counter/tls/{PROBE}"], input=pem)
    try:
        restart_certificates_task(cluster, host)
        fired = eventually(lambda: firing(base, "CertificateExpiresSoon", file=PROBE, node=host), 90,
                           f"CertificateExpiresSoon for {PROBE} on {host}")
        summary = fired[0]["annotations"]["summary"]
        assert summary.startswith(f"{PROBE} on {host} expires in 1d ") or \
            summary.startswith(f"{PROBE} on {host} expires in 2d "), summary
        # Only the probe: every certificate the deploy made has years or months left.
        assert [a["labels"]["file"] for a in alerts(base, "CertificateExpiresSoon")] == [PROBE]
    finally:
        cluster.ssh(host, f"rm -f /etc/counter/tls/{PROBE}")
        restart_certificates_task(cluster, host)
    eventually(lambda: not alerts(base, "CertificateExpiresSoon"), 90, "CertificateExpiresSoon to resolve")


def test_a_consul_server_out_of_contact_fires_quorum_at_risk_and_target_down_until_it_returns(cluster):
    base = prometheus(cluster)
    prometheus_host = cluster.t.host_of(base.split("//")[1].rsplit(":", 1)[0])
    # Neither Prometheus' machine (its agent feeds its targets) nor the
    # leader's (no election needed to see the fault).
    victim = next(h for h in cluster.servers if h not in (prometheus_host, leader_host(cluster.t, "consul")))
    assert not alerts(base, "ConsulQuorumAtRisk"), "ConsulQuorumAtRisk fires before the fault"
    cluster.ssh(victim, "systemctl stop consul")
    try:
        eventually(lambda: firing(base, "ConsulQuorumAtRisk") and firing(base, "TargetDown", job="consul",
                                                                         node=victim),
                   120, f"ConsulQuorumAtRisk and TargetDown of {victim}'s Consul to fire")
        summary = firing(base, "TargetDown", job="consul", node=victim)[0]["annotations"]["summary"]
        assert summary == f"consul at {cluster.addr[victim]}:8501 cannot be scraped", summary
    finally:
        cluster.ssh(victim, "systemctl start consul")
    eventually(lambda: not alerts(base, "ConsulQuorumAtRisk") and not alerts(base, "TargetDown"), 120,
               "ConsulQuorumAtRisk and TargetDown to resolve")
    # Whatever the agent's absence disturbed is whole again for the next tests.
    members = eventually(lambda: all(m["Status"] == 1 for m in cluster.consul_api("/v1/agent/members"))
                         and cluster.consul_api("/v1/agent/members"), 60, "every Consul member alive")
    assert len(members) == len(cluster.hosts)
