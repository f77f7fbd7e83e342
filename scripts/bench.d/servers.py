"""What scripts/bench runs on 127.0.0.1: Redis (plain or TLS), the services,
the constant server, nginx, Traefik and Prometheus, each start returning once it answers;
and what the bench asks of them: HTTP, ports, /proc."""

import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path
from string import Template

import traefik_config

from counterops.common import die, log, until

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "target/release"
# No proxy, whatever the environment says: the bench's traffic stays on 127.0.0.1.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def url(port, path="/"):
    return f"http://127.0.0.1:{port}{path}"


def get(address, pki=None):
    """The body of a GET; OSError on a failure or a 4xx/5xx answer (as curl
    -f). An https:// ADDRESS is trusted with PKI's CA, by address alone (the
    services' certificates name web.counter, not 127.0.0.1)."""
    opener = OPENER
    if pki:
        context = ssl.create_default_context(cafile=pki / "ca.pem")
        context.check_hostname = False
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))
    with opener.open(address, timeout=5) as answer:
        return answer.read().decode()


def wait_http(p, what, address, pki=None):
    """Returns once ADDRESS answers; dies with the end of P's log if P exits."""
    def answers():
        if p.poll() is not None:
            sys.stderr.writelines(p.log.read_text(errors="replace").splitlines(keepends=True)[-20:])
            die(f"pid {p.pid} exited before {what}; the end of its log is above")
        return get(address, pki) is not None

    until(what, answers, 20, interval=0.2)


def claim_ports(first, count):
    for port in range(first, first + count):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                die(f"port {port} is in use; set BENCH_BASE_PORT to a free range")


def peak_rss_mb(pid):
    kb = re.search(r"^VmHWM:\s+(\d+)", Path(f"/proc/{pid}/status").read_text(), re.M)[1]
    return f"{int(kb) / 1024:.1f}"


def cpu_s(pid):
    """CPU time (user + system, all threads) the process has used so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tcp_passive_opens():
    """TCP connections accepted in this network namespace so far."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Tcp:")]
    return int(lines[1][lines[0].index("PassiveOpens")])


def redis_gets(port):
    """GET commands the Redis on PORT has served since it started."""
    stats = subprocess.run(["redis-cli", "-p", str(port), "info", "commandstats"], capture_output=True, text=True, timeout=5)
    calls = re.search(r"^cmdstat_get:calls=(\d+)", stats.stdout, re.M)
    return int(calls[1]) if calls else 0


def constant(b, name, port, *mode):
    """The services' own HTTP server answering a constant: the baselines'
    backend; with MODE "memory", web's real routes over an in-memory store."""
    p = b.start(name, BIN / "examples/constant", f"127.0.0.1:{port}", *mode)
    wait_http(p, f"the constant server on :{port}", url(port))
    return p


def service(b, name, port, binary, *flags, ready=False, pki=None):
    """A service, live (with READY: ready, its Redis reached); with PKI
    (make_pki), serving HTTPS only, as in a cluster."""
    tls = tls_flags(pki, binary) if pki else []
    p = b.start(name, BIN / binary, "--listen", f"127.0.0.1:{port}", "--log-level", "warn", *flags, *tls)
    health = url(port, "/health/ready" if ready else "/health/live")
    wait_http(p, f"{name} on :{port}", health.replace("http:", "https:") if pki else health, pki)
    return p


def acknowledged(port):
    """Increments a service acknowledged (its batch sizes, summed)."""
    sums = re.findall(r"^counter_write_batch_size_sum\S* (\S+)", get(url(port, "/metrics")), re.M)
    return int(sum(map(float, sums)))


def redis(b, primary, replica, pki=None):
    """An unpersisted primary and a replica of it, as the services expect
    (web-inc WAITs for the replica); returns the replica. With PKI (make_pki):
    TLS only (port 0), clients without a certificate allowed (as in the
    cluster), replication over TLS."""
    log(f"starting redis primary :{primary} and replica :{replica}{', TLS only' if pki else ''}")
    tls = ["--port", "0", "--tls-cert-file", pki / "server.pem", "--tls-key-file", pki / "server.key",
           "--tls-ca-cert-file", pki / "ca.pem", "--tls-auth-clients", "optional"] if pki else []
    replicate = ["--replicaof", "127.0.0.1", str(primary), *(["--tls-replication", "yes"] if pki else [])]
    for port, role in ((primary, []), (replica, replicate)):
        (b.work / f"redis-{port}").mkdir()
        p = b.start(f"redis-{port}", "redis-server", "--tls-port" if pki else "--port", str(port), *tls, "--bind",
                    "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", b.work / f"redis-{port}", *role)
    cli = ["redis-cli", *(["--tls", "--cacert", pki / "ca.pem"] if pki else []), "-p", str(replica), "info", "replication"]

    def synced():
        return "master_link_status:up" in subprocess.run(cli, capture_output=True, text=True, timeout=5).stdout

    until("the replica to sync", synced, 20, interval=0.2)
    return p


def make_pki(pki):
    """A throwaway CA (ECDSA P-256) and what it signed, as a cluster's carry:
    server.pem for IP 127.0.0.1 (Redis), web.pem and web-inc.pem named
    web.counter and web-inc.counter (the services' own HTTPS), client.pem
    (clientAuth: the gateway's certificate to the services); each with its
    .key."""
    pki.mkdir()
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    subprocess.run(["openssl", "req", "-x509", *key, "-days", "1", "-subj", "/CN=Counter bench CA", "-keyout", "ca.key",
                    "-out", "ca.pem"], cwd=pki, check=True, capture_output=True)
    for serial, (stem, ext) in enumerate((("server", "subjectAltName=IP:127.0.0.1"),
                                          ("web", "subjectAltName=DNS:web.counter\nextendedKeyUsage=serverAuth"),
                                          ("web-inc", "subjectAltName=DNS:web-inc.counter\nextendedKeyUsage=serverAuth"),
                                          ("client", "extendedKeyUsage=clientAuth")), start=1):
        (pki / f"{stem}.ext").write_text(ext + "\n")
        for cmd in (["req", *key, "-subj", f"/CN={stem} bench", "-keyout", f"{stem}.key", "-out", f"{stem}.csr"],
                    ["x509", "-req", "-in", f"{stem}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", str(serial),
                     "-days", "1", "-extfile", f"{stem}.ext", "-out", f"{stem}.pem"]):
            subprocess.run(["openssl", *cmd], cwd=pki, check=True, capture_output=True)
    return pki


def tls_flags(pki, binary):
    """A service's flags to serve HTTPS as in a cluster: its certificate, and
    client certificates of the bench's CA past /health/*."""
    return ["--tls-cert", pki / f"{binary}.pem", "--tls-key", pki / f"{binary}.key", "--tls-client-ca", pki / "ca.pem"]


# The proxy-hop baseline: one worker process, no access log, HTTP/1.1 with a
# pool of keep-alive connections to the backend (idle ones, per worker, above
# the bench's 32 concurrent requests, so none is opened per request): what
# forwarding a request costs here with a proxy built for little else. Paths
# are relative to its directory (nginx -p).
NGINX_CONF = Template("""\
worker_processes 1; daemon off; pid nginx.pid; error_log error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  # nginx closes a client's kept connection after 1,000 requests by default:
  # at 6,600 req/s over 32 connections a 5 s latency run crossed it, and the
  # load generator counted each close as an error. Never within a run.
  keepalive_requests 1000000;
  client_body_temp_path body; proxy_temp_path proxy; fastcgi_temp_path fastcgi; uwsgi_temp_path uwsgi; scgi_temp_path scgi;
  upstream backend { server 127.0.0.1:$backend; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$port;
    # Keep-alive to the backend needs HTTP/1.1 and no "Connection: close".
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
""")


def nginx(b, name, port, backend):
    """nginx in front of BACKEND; returns the PID of its single worker (the one
    that serves; the master only supervises), so CPU per request is the worker's."""
    (b.work / name).mkdir()
    (b.work / name / "nginx.conf").write_text(NGINX_CONF.substitute(port=port, backend=backend))
    master = b.start(name, shutil.which("nginx") or "/usr/sbin/nginx", "-p", b.work / name, "-c", "nginx.conf", "-e", "stderr")
    wait_http(master, f"{name} to answer on :{port}", url(port))
    workers = subprocess.run(["pgrep", "-P", str(master.pid)], capture_output=True, text=True).stdout.split()
    return int(workers[0]) if workers else die(f"{name}: no worker process under pid {master.pid}")


def job_env():
    """The variables of the env blocks of nomad/traefik.nomad.hcl (GOGC...)."""
    blocks = re.findall(r"^\s*env \{(.*?)^\s*\}", (ROOT / "nomad/traefik.nomad.hcl").read_text(), re.M | re.S)
    return dict(re.findall(r'^\s*([A-Z_]+)\s*=\s*"([^"]*)"', "".join(blocks), re.M))


def traefik(b, name, admin, knobs, entrypoints):
    """A Traefik configured like the gateway (traefik_config.py) on ENTRYPOINTS
    (name: (port, {service: backend ports})), tuned by KNOBS: NAME=VALUE in
    capitals is an environment variable of Traefik's, such as GOGC, the rest
    traefik_config.py's knobs."""
    env_vars = [k for k in knobs if re.match(r"[A-Z_]+=", k)]
    # The job's environment, as the gateway runs; a knob NAME=VALUE wins. Not
    # for bare Traefik, which is Traefik's defaults.
    env = {**os.environ, **({} if "bare" in knobs else job_env()), **dict(k.split("=", 1) for k in env_vars)}
    traefik_config.write(ROOT, b.work / name, admin, entrypoints, [k for k in knobs if k not in env_vars])
    p = b.start(name, Path(os.environ["COUNTER_CACHE"], "bin/traefik"), f"--configFile={b.work / name}/traefik.yml", env=env)
    b.log_sinks.append(p.log)  # its access log grows ~0.5 KB a request
    wait_http(p, f"{name} to answer /ping on :{admin}", url(admin, "/ping"))
    for port, *_ in entrypoints.values():
        wait_http(p, f"{name} to route :{port}", url(port))
    return p


def prometheus(b, name, port, targets):
    """Debian's Prometheus scraping TARGETS (ports of 127.0.0.1) at the
    interval of the stack's own (prometheus/prometheus.yml's global one)."""
    interval = re.search(r"^\s*scrape_interval:\s*(\S+)", (ROOT / "prometheus/prometheus.yml").read_text(), re.M)[1]
    (b.work / name).mkdir()
    (b.work / name / "prometheus.yml").write_text(
        f"global: {{scrape_interval: {interval}, scrape_timeout: 4s}}\n"
        "scrape_configs:\n  - job_name: bench\n    static_configs:\n"
        f"      - targets: [{', '.join(f'127.0.0.1:{t}' for t in targets)}]\n")
    p = b.start(name, "/usr/bin/prometheus", f"--config.file={b.work / name}/prometheus.yml",
                f"--storage.tsdb.path={b.work / name}/data", f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn")
    wait_http(p, f"{name} on :{port}", url(port, "/-/ready"))
    return p

