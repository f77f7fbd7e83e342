"""Which Counter deployment a tool acts on, and how to reach each part of it:
    t = target.cluster("my.yml")  # or target.local(), or target.from_args(args) (add_arguments)
    t.nomad().get("/v1/jobs"); t.redis("198.18.0.11").call("ROLE"); t.ssh("m2", "uptime")

A cluster is described by its Ansible inventory (read with ansible-inventory,
so every format and variable Ansible accepts works), its secrets kept on this
machine (docs/deploy.md, "State on the operator's machine"); the local stack
is one host on loopback. The APIs are reached through the first server whose
Nomad answers, so the tools work with any server down (docs/observability.md).
"""

import http.client
import json
import os
import shlex
import socket
import ssl
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from . import client, render
from .redis import Redis

CACHE = Path(os.environ.get("COUNTER_CACHE")
             or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "counter")
LOCAL_STATE = Path(os.environ.get("COUNTER_STATE") or CACHE / "local")
TEST_CLUSTER = Path(os.environ.get("CLUSTER_STATE") or CACHE / "cluster")
TEST_INVENTORY = TEST_CLUSTER / "inventory.yml"
BIN = CACHE / "bin"


class TargetError(Exception):
    pass


@dataclass
class Host:
    name: str
    addr: str
    ssh_args: list = field(default_factory=list)


@dataclass
class Target:
    kind: str  # "local" or "cluster"
    hosts: dict  # name -> Host, in the inventory's order
    servers: list
    secrets: Path
    state: Path
    inventory: Path = None
    gateway_vip: str = None
    # The inventory's variables (a cluster's), some of which override settings().
    inventory_vars: dict = field(default_factory=dict)

    def settings(self):
        """The settings every deployment shares (deploy/group_vars/all/settings.yml),
        with the values a cluster's inventory sets for any of them."""
        shared = render.settings()
        return shared | {k: v for k, v in self.inventory_vars.items() if k in shared}

    def ca(self, role):
        """The CA file a client of ROLE (consul, nomad, redis, gateway) trusts,
        and only that role's servers present a certificate it signed
        (counterops.certs); None on the local stack (plain HTTP on loopback)."""
        ca = self.secrets / "tls" / f"{role}-ca.pem"
        return str(ca) if self.kind == "cluster" and ca.exists() else None

    def secret(self, name, default=None):
        if (path := self.secrets / name).exists():
            return path.read_text().strip()
        if default is None:
            raise TargetError(f"no secret {name} in {self.secrets}")
        return default

    def nomad_addr(self, host):
        return "http://127.0.0.1:4646" if self.kind == "local" else f"https://{self.hosts[host].addr}:4646"

    def consul_addr(self, host):
        return "http://127.0.0.1:8500" if self.kind == "local" else f"https://{self.hosts[host].addr}:8501"

    def server(self, avoid=()):
        """The first server not in AVOID whose Nomad answers (else the first
        one); remembered until AVOID changes."""
        avoid = tuple(avoid)
        if getattr(self, "_server", (None,))[0] != avoid:
            candidates = [s for s in self.servers if s not in avoid] or self.servers
            chosen = next((s for s in candidates if len(candidates) == 1
                           or nomad_answers(self.nomad_addr(s), self.ca("nomad"), timeout=2)), candidates[0])
            self._server = (avoid, chosen)
        return self._server[1]

    def nomad_token(self):
        """An operator's own NOMAD_TOKEN wins over the deploy's management token."""
        return os.environ.get("NOMAD_TOKEN") or self.secret("nomad-management.token", "")

    def nomad(self, avoid=(), host=None, **kw):
        return client.nomad(self.nomad_addr(host or self.server(avoid)), self.nomad_token(), self.ca("nomad"), **kw)

    def consul(self, avoid=(), host=None, **kw):
        """With CONSUL_HTTP_TOKEN[_FILE], if set (as nomad()), else the management token."""
        env = os.environ
        token = (env.get("CONSUL_HTTP_TOKEN")
                 or (Path(env["CONSUL_HTTP_TOKEN_FILE"]).read_text().strip() if env.get("CONSUL_HTTP_TOKEN_FILE") else "")
                 or self.secret("consul-management.token", ""))
        return client.consul(self.consul_addr(host or self.server(avoid)), token, self.ca("consul"), **kw)

    def cli_env(self, avoid=(), tokens=True):
        """The environment of the nomad and consul CLIs, for subprocesses:
        the tools first on PATH, the APIs, each role.s CA and name, and the management tokens
        (from files; the Consul one by file name)."""
        server = self.server(avoid)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NOMAD_", "CONSUL_"))}
        env.update(PATH=f"{BIN}:{env.get('PATH', '')}", NOMAD_ADDR=self.nomad_addr(server),
                   CONSUL_HTTP_ADDR=self.consul_addr(server), NOMAD_CLI_SHOW_HINTS="0")
        env.update(self.tls_env())
        if tokens:
            env["NOMAD_TOKEN"] = self.nomad_token()
            env["CONSUL_HTTP_TOKEN_FILE"] = str(self.secrets / "consul-management.token")
        return env

    def service_get(self, job, address, path, timeout=2.0):
        """(status, body) of GET PATH from one instance of JOB (web, web-inc)
        at ADDRESS (ip:port). A cluster's instances serve HTTPS only and
        answer more than /health/* only to a client certificate of the
        services CA: this presents the operators' (cli-services.pem) and
        checks the instance's name, JOB.counter (counterops.certs)."""
        host, _, port = address.rpartition(":")
        ca = self.ca("services")
        with socket.create_connection((host, int(port)), timeout=timeout) as raw:
            if ca is None:
                conn = raw
                name = address
            else:
                context = ssl.create_default_context(cafile=ca)
                tls = self.secrets / "tls"
                context.load_cert_chain(str(tls / "cli-services.pem"), str(tls / "cli-services-key.pem"))
                name = f"{job}.counter"
                conn = context.wrap_socket(raw, server_hostname=name)
            with conn:
                conn.sendall(f"GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
                response = http.client.HTTPResponse(conn)
                response.begin()
                return response.status, response.read().decode(errors="replace")

    def tls_env(self):
        """The CLIs' TLS settings: each trusts its own role's CA and checks
        the name every agent of that role carries, whichever host it asks
        (counterops.certs); nothing on the local stack."""
        if self.kind != "cluster":
            return {}
        return {"NOMAD_CACERT": str(self.secrets / "tls" / "nomad-ca.pem"), "NOMAD_TLS_SERVER_NAME": "client.global.nomad",
                "CONSUL_CACERT": str(self.secrets / "tls" / "consul-ca.pem"),
                "CONSUL_TLS_SERVER_NAME": f"client.{self.settings()['counter_datacenter']}.consul"}

    def env_lines(self):
        """Shell lines that point the CLIs at this deployment (scripts/env).
        The tokens are read from their files when the lines run: printing
        them shows no secret."""
        server = self.servers[0]
        q = shlex.quote
        lines = [f'export PATH={q(str(BIN))}:"$PATH"',
                 f"export NOMAD_ADDR={self.nomad_addr(server)} CONSUL_HTTP_ADDR={self.consul_addr(server)}"]
        if self.kind == "cluster":
            tls = self.secrets / "tls"
            lines += ["export " + " ".join(f"{k}={q(v)}" for k, v in self.tls_env().items()),
                      # The client certificate, for the RPC-level tools that want one.
                      f"export NOMAD_CLIENT_CERT={q(str(tls / 'cli.pem'))} NOMAD_CLIENT_KEY={q(str(tls / 'cli-key.pem'))}"]
        lines += [f'export NOMAD_TOKEN="$(cat {q(str(self.secrets / "nomad-management.token"))})"',
                  f"export CONSUL_HTTP_TOKEN_FILE={q(str(self.secrets / 'consul-management.token'))}",
                  "unset CONSUL_HTTP_TOKEN"]
        return "\n".join(lines)

    def gateway(self, host=None):
        if self.kind == "local":
            return "http://127.0.0.1:8080"
        if host is None and self.gateway_vip:
            return f"http://{self.gateway_vip}:8080"
        return f"http://{self.hosts[host or self.servers[0]].addr}:8080"

    def redis(self, addr, port=6380, user="check", timeout=2.0):
        """A connection to a Redis node as USER (redis-USER.password; none
        when the deployment has no Redis users)."""
        password = self.secret(f"redis-{user}.password", "") or None
        return Redis(addr, port, password, user if password else None, self.ca("redis"), timeout)

    def sentinel(self, addr, port=26380, timeout=2.0):
        return Redis(addr, port, self.secret("sentinel.password", "") or None, None, self.ca("redis"), timeout)

    def host_of(self, addr):
        for h in self.hosts.values():
            if h.addr == addr:
                return h.name
        raise TargetError(f"no host has address {addr}")

    def ssh(self, host, command, check=True, timeout=120):
        """A shell command on a host, over SSH as the deploy reaches it."""
        if self.kind == "local":
            raise TargetError("the local stack has no SSH hosts")
        p = subprocess.run(["ssh", *self.hosts[host].ssh_args, command], capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise TargetError(f"ssh {host} {command!r}: exit {p.returncode}: {p.stderr.strip()[-500:]}")
        return p


def local():
    return Target("local", {"local": Host("local", "127.0.0.1")}, ["local"], LOCAL_STATE / "secrets", LOCAL_STATE)


def cluster(inventory):
    """The deployment of an Ansible inventory (its groups servers and clients)."""
    path = Path(inventory).resolve()
    if not path.exists():
        raise TargetError(f"no inventory {path} (scripts/cluster up, or --inventory FILE)")
    tool = BIN / "ansible-inventory"  # scripts/install's venv's, else one on PATH
    tool = str(tool) if os.access(tool, os.X_OK) else "ansible-inventory"
    try:
        # From /: ansible-inventory would also read a group_vars/ beside the
        # current directory (deploy/'s, with templates only Ansible renders).
        out = subprocess.run([tool, "-i", str(path), "--list"], capture_output=True, text=True, check=True, cwd="/")
    except FileNotFoundError:
        raise TargetError("ansible-inventory not found: run scripts/install --only ansible") from None
    except subprocess.CalledProcessError as err:
        raise TargetError(f"cannot read the inventory {path}: {err.stderr.strip()}") from None
    inv = json.loads(out.stdout)
    hostvars = inv.get("_meta", {}).get("hostvars", {})

    def group(name):
        return list(inv.get(name, {}).get("hosts", []))

    hosts = {}
    for name in group("clients"):
        v = hostvars.get(name, {})
        ssh = v.get("ansible_host", name)
        # The ssh command line Ansible would use for this host (its key, its known_hosts).
        key = v.get("ansible_ssh_private_key_file")
        args = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=5", *(["-i", os.path.expanduser(key)] if key else []),
                *shlex.split(v.get("ansible_ssh_common_args", "")), f"{v.get('ansible_user', 'root')}@{ssh}"]
        addr = v.get("counter_addr", ssh)
        # A template only Ansible renders: the deploy's default, the ssh address.
        hosts[name] = Host(name, ssh if "{{" in str(addr) else addr, args)
    merged = {}
    for v in hostvars.values():
        for key, value in v.items():
            merged.setdefault(key, value)
    state = Path(merged.get("counter_state_dir") or CACHE / "deploy" / path.stem)
    return Target("cluster", hosts, group("servers"), state / "secrets", state, path, merged.get("counter_gateway_vip"),
                  merged)


def nomad_answers(addr, ca=None, timeout=1):
    try:
        client.nomad(addr, ca=ca, timeout=timeout, retries=0).get("/v1/status/leader")
        return True
    except client.ApiError:
        return False


def add_arguments(parser):
    """--local / --cluster / --inventory FILE, for every command that takes a target."""
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--local", dest="mode", action="store_const", const="local",
                   help="the local stack (scripts/up)")
    g.add_argument("--cluster", dest="mode", action="store_const", const="cluster",
                   help=f"the test machines of scripts/cluster ({TEST_INVENTORY})")
    g.add_argument("--inventory", "-i", metavar="FILE", help="a cluster deployed with scripts/deploy -i FILE")
    parser.set_defaults(mode="auto")


def from_args(args):
    """--inventory's cluster, the local stack, the test machines, or (none of
    them given) the local stack when its Nomad answers or there is no test cluster."""
    if args.inventory:
        return cluster(args.inventory)
    mode = args.mode
    if mode == "auto":
        mode = "local" if nomad_answers("http://127.0.0.1:4646") or not TEST_INVENTORY.exists() else "cluster"
    return local() if mode == "local" else cluster(TEST_INVENTORY)
