"""The test machines of scripts/cluster as the tests see them: the ops
tools' own view of the cluster (counterops.target: its inventory, hosts,
addresses, secrets and APIs), and the tools an operator uses (nomad, consul,
redis-cli, ssh, scripts/deploy, scripts/status, scripts/chaos), run with the
cluster's management tokens from files.
"""

import os
import re
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from counterops import target

REPO = Path(__file__).resolve().parents[2]
INVENTORY = target.TEST_INVENTORY
SECRETS = target.TEST_CLUSTER / "secrets"
TLS = SECRETS / "tls"
# What a client of each role trusts (counterops.certs: one CA per role).
CONSUL_CA, NOMAD_CA, REDIS_CA, GATEWAY_CA, SERVICES_CA = (
    TLS / f"{role}-ca.pem" for role in ("consul", "nomad", "redis", "gateway", "services"))
# Which CA an https:// URL's port is verified against.
CA_OF_PORT = {8501: CONSUL_CA, 4646: NOMAD_CA, 8443: GATEWAY_CA}
BIN = target.BIN


def tls_context(cert=None, ca=GATEWAY_CA):
    """A client context that trusts CA (default: the gateway's) and presents
    CERT, a stem under TLS, e.g. "cli", when given."""
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert:
        ctx.load_cert_chain(str(TLS / f"{cert}.pem"), str(TLS / f"{cert}-key.pem"))
    return ctx


def run(cmd, check=True, timeout=900, env=None, input=None):
    """A command's completed process; its output is echoed on failure."""
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, input=input)
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd[0]} {' '.join(cmd[1:3])}... exited {p.returncode}\n"
                             f"--- stdout\n{p.stdout[-6000:]}\n--- stderr\n{p.stderr[-6000:]}")
    return p


def secret(name):
    return (SECRETS / name).read_text().strip()


def http(url, method="GET", headers=None, data=None, timeout=5, context=None):
    """(status, body); HTTP error statuses are returned, not raised. An
    https:// URL is verified against the CA of the role that serves its
    port (CA_OF_PORT) unless CONTEXT says otherwise."""
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    if context is None and url.startswith("https:"):
        context = tls_context(ca=CA_OF_PORT[urllib.parse.urlsplit(url).port])
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def eventually(fn, timeout, what):
    """fn() until it returns a truthy value; its last value or error is the failure message."""
    deadline, last = time.monotonic() + timeout, None
    while True:
        try:
            value = fn()
            if value:
                return value
            last = value
        except (AssertionError, OSError, subprocess.SubprocessError, ValueError, KeyError) as err:
            last = err
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last: {last})")
        time.sleep(1)


class Cluster:
    """The running test cluster, read from its inventory."""

    def __init__(self):
        self.t = target.cluster(INVENTORY)
        self.hosts = list(self.t.hosts)
        self.servers = self.t.servers
        self.addr = {h: self.t.hosts[h].addr for h in self.hosts}
        self.gateway_vip = self.t.gateway_vip

    def gateway(self, host):
        return self.t.gateway(host)

    def env(self, tokens=True):
        """The environment the nomad and consul CLIs need (tokens from files)."""
        return self.t.cli_env(tokens=tokens)

    def nomad(self, *args, check=True, tokens=True):
        return run([str(BIN / "nomad"), *args], check=check, env=self.env(tokens))

    def consul(self, *args, check=True, tokens=True):
        return run([str(BIN / "consul"), *args], check=check, env=self.env(tokens))

    def nomad_api(self, path):
        return self.t.nomad().get(path)

    def consul_api(self, path):
        return self.t.consul().get(path)

    def ssh(self, host, command, check=True):
        """A shell command on a host, over SSH as the deploy reaches it."""
        return run(["ssh", *self.t.hosts[host].ssh_args, command], check=check, timeout=120)

    def redis_cli(self, host, *args, user="check", password_file="redis-check.password", port=6380):
        env = dict(os.environ)
        if user:
            env["REDISCLI_AUTH"] = secret(password_file)
        cmd = ["redis-cli", "--no-auth-warning", "--tls", "--cacert", str(REDIS_CA), "-h", self.addr[host], "-p", str(port)]
        if user and user != "default":
            cmd += ["--user", user]
        return run(cmd + list(args), check=False, env=env, timeout=10).stdout.strip()

    def sentinel_cli(self, host, *args):
        env = dict(os.environ, REDISCLI_AUTH=secret("sentinel.password"))
        return run(["redis-cli", "--no-auth-warning", "--tls", "--cacert", str(REDIS_CA), "-h", self.addr[host],
                    "-p", "26380", *args],
                   check=False, env=env, timeout=10).stdout.strip()

    def primary(self):
        # Each instance is registered by two agents (a ring): one address.
        addrs = {e["Service"]["Address"] for e in self.consul_api("/v1/health/service/redis-primary?passing")}
        assert len(addrs) == 1, f"passing redis-primary at {addrs}"
        return self.t.host_of(addrs.pop())

    def running_allocs(self, job):
        return [a for a in self.nomad_api(f"/v1/job/{job}/allocations") if a["ClientStatus"] == "running"]


def deploy(*extra):
    """scripts/deploy on the test cluster's inventory: (process, recap {host: counts})."""
    p = run([str(REPO / "scripts/deploy"), "-i", str(INVENTORY), *extra], timeout=1500)
    return p, recap(p.stdout)


def recap(output):
    """Ansible's PLAY RECAP: {host: {"ok": n, "changed": n, ...}}."""
    out = {}
    for line in output.splitlines():
        m = re.match(r"^(\S+)\s+:\s+(ok=.*)$", line)
        if m:
            out[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return out


def secret_values():
    """Every generated secret of the cluster (tokens, passwords, keys), and
    the first line of every TLS private key's body (a leaked key shows it)."""
    values = [p.read_text().strip() for p in SECRETS.iterdir()
              if p.suffix in (".token", ".password", ".key") and p.read_text().strip()]
    for key in TLS.glob("*-key.pem"):
        body = [line for line in key.read_text().splitlines() if line and not line.startswith("-----")]
        values.append(body[0])
    return values


def lines_with_secret(text):
    values = secret_values()
    assert values, "no secrets found to look for"
    return [line for line in text.splitlines() if any(v in line for v in values)]
