"""Certificates rotated under load, as `scripts/deploy rotate-certs` does it
(scripts/chaos: its load through the gateways in rotation): no failed
request, no lost increment. CLUSTER_ROTATE picks what is rotated:

  leaves (default)  scripts/chaos rotate-certs: every leaf made anew from the
                    same CAs (one pass over the hosts, ~4 min); afterwards
                    every TLS port of every machine presents a new leaf of
                    the CA it had
  ca                scripts/chaos rotate-ca: every CA replaced too (three
                    passes, ~11 min: a long run, docs/chaos.md); afterwards
                    every TLS port presents a leaf of the new CAs, and
                    neither the hosts nor the operator's tools trust the old
                    ones
"""

import os
import re
import socket
import ssl

from cluster import REPO, TLS, run

from counterops import expiry

ROLES = ("consul", "nomad", "redis", "gateway", "services")
# The trust files each host has (the gateway's CA is its clients').
HOST_TRUST = ("consul", "nomad", "redis", "services")
ROTATE = os.environ.get("CLUSTER_ROTATE", "leaves")


def serial(addr, port, ca, name=None):
    """The serial number of the certificate ADDR:PORT presents, or None if CA
    did not sign it. (Every listener completes the handshake without a
    client certificate: TLS 1.3 refuses a missing one only after it.)"""
    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = False
    try:
        with socket.create_connection((addr, port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname=name or addr) as tls:
                return tls.getpeercert()["serialNumber"]
    except ssl.SSLCertVerificationError:
        return None


def endpoints(cluster):
    """(address, port, role, name) of every TLS listener: the agents', Redis',
    Sentinel's and the gateway's on each host, and each web and web-inc
    instance's."""
    out = [(cluster.addr[h], port, role, None) for h in cluster.hosts
           for _, port, servers_only, role in expiry.ENDPOINTS if not servers_only or h in cluster.servers]
    for job in ("web", "web-inc"):
        out += [(s["ServiceAddress"], s["ServicePort"], "services", f"{job}.counter")
                for s in cluster.consul_api(f"/v1/catalog/service/{job}")]
    return out


def served_serials(cluster, cas):
    """{(address, port): serial} of every TLS listener, each verified against
    its role's CA in CAS (a directory of <role>.pem)."""
    return {(addr, port): serial(addr, port, cas / f"{role}.pem", name)
            for addr, port, role, name in endpoints(cluster)}


def test_certificates_rotated_under_load_fail_no_request_and_every_port_presents_a_new_leaf(cluster, tmp_path):
    assert ROTATE in ("leaves", "ca"), f"CLUSTER_ROTATE={ROTATE}: leaves or ca"
    old = {role: (TLS / "ca" / f"{role}.pem").read_text() for role in ROLES}
    for role, pem in old.items():
        (tmp_path / f"{role}.pem").write_text(pem)
    before = served_serials(cluster, tmp_path)
    assert len(before) >= 5 * len(cluster.hosts) and None not in before.values(), before
    scenario = "rotate-ca" if ROTATE == "ca" else "rotate-certs"
    p = run([str(REPO / "scripts/chaos"), scenario], check=False, timeout=1800)
    print(p.stdout, p.stderr[-3000:])
    assert p.returncode == 0, p.stdout + p.stderr[-3000:]
    assert re.search(r"\bfailed=0\b", p.stdout) and "lost=0" in p.stdout, p.stdout
    assert not (TLS / "ca-next").exists() and not (TLS / "ca-previous").exists()
    new = {role: (TLS / "ca" / f"{role}.pem").read_text() for role in ROLES}
    if ROTATE == "ca":
        assert all(new[r] != old[r] for r in ROLES)
    else:
        assert new == old, "a rotation of the leaves replaced a CA"
    for role in ROLES:
        assert (TLS / f"{role}-ca.pem").read_text() == new[role], f"the tools trust another {role} CA"
    for host in cluster.hosts:
        for role in HOST_TRUST:
            held = cluster.ssh(host, f"cat /etc/counter/tls/{role}-ca.pem").stdout
            assert held == new[role], f"{host} trusts another {role} CA than {TLS / 'ca'}'s"
    (tmp_path / "new").mkdir()
    for role, pem in new.items():
        (tmp_path / "new" / f"{role}.pem").write_text(pem)
    after = served_serials(cluster, tmp_path / "new")
    assert len(after) >= 5 * len(cluster.hosts)
    for where, number in after.items():
        assert number is not None, f"{where}: not a leaf of the current CA"
        assert number not in before.values(), f"{where}: still the leaf it presented before"
    if ROTATE == "ca":
        for addr, port, role, name in endpoints(cluster):
            assert serial(addr, port, tmp_path / f"{role}.pem", name) is None, f"{addr}:{port} ({role}): the old CA's"
