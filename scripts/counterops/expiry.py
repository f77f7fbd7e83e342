"""When a cluster's certificates expire: the one each TLS endpoint of each
host serves (what its clients verify, so a renewed file that no agent has
loaded yet still counts as the old one), and each role's CA. scripts/status shows
them and fails under WARN_DAYS; the leaves are issued for two years
(counterops.certs), and `scripts/deploy rotate-certs` renews them
(counterops.rotate).
"""

import socket
import ssl
import subprocess
import time

WARN_DAYS = 30
# (what, port, on servers only, whose CA): every TLS listener of docs/deploy.md's firewall table.
ENDPOINTS = [("consul https", 8501, False, "consul"), ("nomad https", 4646, False, "nomad"),
             ("redis", 6380, False, "redis"), ("sentinel", 26380, True, "redis"),
             ("gateway https", 8443, False, "gateway")]
ROLES = ("consul", "nomad", "redis", "gateway", "services")


def days_left(not_after, now=None):
    """Whole days from NOW (default: now) to a certificate's notAfter as Python's
    ssl and openssl print it ("Dec  4 12:00:00 2028 GMT")."""
    return int((ssl.cert_time_to_seconds(not_after) - (time.time() if now is None else now)) // 86400)


def served(addr, port, ca, timeout=3.0):
    """The notAfter of the certificate ADDR:PORT presents, verified against CA
    (and so named for ADDR); an error's text when it cannot be read."""
    context = ssl.create_default_context(cafile=ca)
    try:
        with socket.create_connection((addr, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=addr) as tls:
                return tls.getpeercert()["notAfter"]
    except (OSError, ssl.SSLError) as e:
        raise OSError(f"{addr}:{port}: {e}") from e


def file_not_after(path):
    out = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", str(path)],
                         capture_output=True, text=True, timeout=10)
    if out.returncode != 0 or not out.stdout.startswith("notAfter="):
        raise OSError(f"{path}: {out.stderr.strip() or 'not a certificate'}")
    return out.stdout.strip().split("=", 1)[1]


def rows(t):
    """[[machine, what, address, expires, days left, note]] for each CA and every
    endpoint, and whether all are readable and more than WARN_DAYS away."""
    table, healthy = [], True

    def add(machine, what, where, read):
        nonlocal healthy
        try:
            not_after = read()
        except OSError as e:
            table.append([machine, what, where, "-", "-", f"unreadable: {e}"])
            healthy = False
            return
        days = days_left(not_after)
        fix = "scripts/deploy rotate-certs" + (" --ca" if what.endswith(" CA") else "")
        note = f"under {WARN_DAYS} days: {fix}" if days < WARN_DAYS else ""
        healthy = healthy and not note
        table.append([machine, what, where, not_after, days, note])

    for role in ROLES:
        add("-", f"{role} CA", t.ca(role), lambda role=role: file_not_after(t.ca(role)))
    for name, host in t.hosts.items():
        for what, port, servers_only, role in ENDPOINTS:
            if not servers_only or name in t.servers:
                add(name, what, f"{host.addr}:{port}",
                    lambda port=port, host=host, role=role: served(host.addr, port, t.ca(role)))
    return table, healthy
