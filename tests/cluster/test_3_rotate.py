"""Every CA and every certificate replaced under load, as
`scripts/deploy rotate-certs --ca` does it (scripts/chaos rotate-ca: its
load through the gateways in rotation): no failed request, no lost
increment; afterwards every TLS port of every machine presents a leaf of
the new CAs, and neither the hosts nor the operator's tools trust the old
ones."""

import re
import socket
import ssl

from cluster import REPO, TLS, run

from counterops import expiry

ROLES = ("consul", "nomad", "redis", "gateway", "services")
# The trust files each host has (the gateway's CA is its clients').
HOST_TRUST = ("consul", "nomad", "redis", "services")


def verified_by(addr, port, ca, name=None):
    """True when ADDR:PORT presents a certificate CA signed (a missing client
    certificate may end the handshake after that: it still counts)."""
    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = False
    try:
        with socket.create_connection((addr, port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname=name or addr):
                return True
    except ssl.SSLCertVerificationError:
        return False
    except (ssl.SSLError, ConnectionResetError):
        return True


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


def test_every_ca_rotated_under_load_fails_no_request_and_the_old_cas_are_trusted_nowhere(cluster, tmp_path):
    old = {role: (TLS / "ca" / f"{role}.pem").read_text() for role in ROLES}
    for role, pem in old.items():
        (tmp_path / f"{role}.pem").write_text(pem)
    p = run([str(REPO / "scripts/chaos"), "rotate-ca"], check=False, timeout=1800)
    print(p.stdout, p.stderr[-3000:])
    assert p.returncode == 0, p.stdout + p.stderr[-3000:]
    assert re.search(r"\bfailed=0\b", p.stdout) and "lost=0" in p.stdout, p.stdout
    assert not (TLS / "ca-next").exists() and not (TLS / "ca-previous").exists()
    new = {role: (TLS / "ca" / f"{role}.pem").read_text() for role in ROLES}
    assert all(new[r] != old[r] for r in ROLES)
    for role in ROLES:
        assert (TLS / f"{role}-ca.pem").read_text() == new[role], f"the tools still trust an old {role} CA"
    for host in cluster.hosts:
        for role in HOST_TRUST:
            held = cluster.ssh(host, f"cat /etc/counter/tls/{role}-ca.pem").stdout
            assert held == new[role], f"{host} still trusts an old {role} CA"
    served = endpoints(cluster)
    assert len(served) >= 5 * len(cluster.hosts)
    for addr, port, role, name in served:
        assert verified_by(addr, port, TLS / f"{role}-ca.pem", name), f"{addr}:{port} ({role}): not the new CA's"
        assert not verified_by(addr, port, tmp_path / f"{role}.pem", name), f"{addr}:{port} ({role}): the old CA's"
