"""TLS on every link between machines, seen from another machine (this one,
on the test machines' network): Consul, Nomad, Redis and Sentinel refuse
plain text and a certificate from another CA, and accept their role's own;
a leaf of one role cannot pose as another to that role's clients; the
gateway serves HTTPS with a certificate of its CA; Traefik's API answers
only on each machine's loopback."""

import re
import socket
import ssl
import subprocess
import threading
import urllib.error
from http.client import HTTPResponse

import pytest
from cluster import BIN, CONSUL_CA, NOMAD_CA, REDIS_CA, SERVICES_CA, TLS, http, run, tls_context

# The first byte of a connection to an RPC port says what follows; this one
# says "TLS". Consul: pool.RPCTLS; Nomad: pool.RpcTLS.
CONSUL_RPC, CONSUL_RPC_TLS = 8300, b"\x03"
NOMAD_RPC, NOMAD_RPC_TLS = 4647, b"\x04"
# ... and these say "plain-text RPC" (Consul's RPCConsul, Nomad's RpcNomad).
CONSUL_RPC_PLAIN, NOMAD_RPC_PLAIN = b"\x00", b"\x01"
# The CA each port's clients trust: its role's (counterops.certs).
CA_OF_PORT = {CONSUL_RPC: CONSUL_CA, NOMAD_RPC: NOMAD_CA, 6380: REDIS_CA, 26380: REDIS_CA}


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory):
    """A self-signed certificate and key no part of the cluster trusts."""
    d = tmp_path_factory.mktemp("other-ca")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-subj", "/CN=not the cluster CA",
                    "-days", "1", "-addext", "subjectAltName=DNS:client.dc1.consul,DNS:client.global.nomad"],
                   check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


def closed_without_answer(sock, timeout=3.0):
    """True when the peer closes (or resets) without a byte of answer."""
    sock.settimeout(timeout)
    try:
        return sock.recv(64) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def plain_answer(addr, port, request, timeout=3.0):
    """The first bytes a port answers to a plain-text REQUEST (b"" when it
    closes, resets or stays silent)."""
    with socket.create_connection((addr, port), timeout=5) as s:
        s.sendall(request)
        s.settimeout(timeout)
        try:
            return s.recv(64)
        except (ConnectionResetError, socket.timeout):
            return b""


def tls_session(addr, port, prefix, cert=None, verify_host=False):
    """Connects, sends PREFIX, then a TLS handshake trusting the CA of the
    port's role and presenting CERT ((cert, key) paths) when given. Returns
    the TLS socket, or the SSL error as a string."""
    ctx = ssl.create_default_context(cafile=str(CA_OF_PORT[port]))
    ctx.check_hostname = verify_host
    if cert:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    raw = socket.create_connection((addr, port), timeout=5)
    if prefix:
        raw.sendall(prefix)
    try:
        s = ctx.wrap_socket(raw, server_hostname=addr if verify_host else None)
    except (ssl.SSLError, ConnectionResetError, OSError) as err:
        raw.close()
        return str(err)
    return s


def refused_after_handshake(s):
    """With TLS 1.3 a server's refusal of the client's certificate arrives
    after the client's handshake ends: the first read sees it."""
    if isinstance(s, str):
        return True
    try:
        s.settimeout(3)
        data = s.recv(64)
        return data == b""
    except (ssl.SSLError, ConnectionResetError, OSError):
        return True
    except socket.timeout:
        return False
    finally:
        s.close()


def stays_open(s):
    """A session the server accepted: it waits for our request."""
    assert not isinstance(s, str), f"handshake failed: {s}"
    try:
        s.settimeout(1.5)
        s.recv(64)
        return False
    except socket.timeout:
        return True
    except (ssl.SSLError, OSError):
        return False
    finally:
        s.close()


def cert(stem):
    return TLS / f"{stem}.pem", TLS / f"{stem}-key.pem"


@pytest.mark.parametrize("port,plain,tls", [(CONSUL_RPC, CONSUL_RPC_PLAIN, CONSUL_RPC_TLS),
                                            (NOMAD_RPC, NOMAD_RPC_PLAIN, NOMAD_RPC_TLS)],
                         ids=["consul-rpc", "nomad-rpc"])
def test_rpc_is_mutual_tls_with_the_clusters_ca_only(cluster, other_ca, port, plain, tls):
    addr = cluster.addr[cluster.servers[0]]
    with socket.create_connection((addr, port), timeout=5) as s:
        s.sendall(plain)
        assert closed_without_answer(s), f"{addr}:{port} kept a plain-text RPC connection open"
    no_cert = tls_session(addr, port, tls)
    assert refused_after_handshake(no_cert), f"{addr}:{port} accepted TLS without a client certificate"
    foreign = tls_session(addr, port, tls, cert=other_ca)
    assert refused_after_handshake(foreign), f"{addr}:{port} accepted a certificate from another CA"
    # So is another role's (Redis'), from a CA of the same cluster.
    assert refused_after_handshake(tls_session(addr, port, tls, cert=cert(f"{cluster.hosts[-1]}-redis"))), \
        f"{addr}:{port} accepted Redis' certificate"
    # The positive control: an agent's certificate from its role's CA is
    # let in (Nomad's RPC also wants an agent's name, client.global.nomad or
    # server.global.nomad, so the operators' cli.pem is not enough there).
    agent = cert(f"{cluster.hosts[-1]}-{'consul' if port == CONSUL_RPC else 'nomad'}")
    assert stays_open(tls_session(addr, port, tls, cert=agent)), f"{addr}:{port} refused its role's CA"


def test_nomad_rpc_refuses_a_certificate_that_names_no_agent(cluster):
    addr = cluster.addr[cluster.servers[0]]
    assert refused_after_handshake(tls_session(addr, NOMAD_RPC, NOMAD_RPC_TLS, cert=cert("cli")))


def test_consul_http_is_loopback_only_and_https_elsewhere(cluster):
    addr = cluster.addr[cluster.servers[0]]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((addr, 8500), timeout=5).close()
    status, body = http(f"http://{addr}:8501/v1/status/leader")
    assert status == 400 and "HTTPS" in body, (status, body)
    status, body = http(f"https://{addr}:8501/v1/status/leader")
    assert status == 200 and ":8300" in body, (status, body)
    # Plain HTTP on the machine's own loopback, for the agents beside it.
    assert ":8300" in cluster.ssh(cluster.servers[0], "curl -s http://127.0.0.1:8500/v1/status/leader").stdout


def test_nomad_http_is_https_only(cluster):
    addr = cluster.addr[cluster.servers[0]]
    status, body = http(f"http://{addr}:4646/v1/status/leader")
    assert status == 400 and "HTTPS" in body, (status, body)
    status, body = http(f"https://{addr}:4646/v1/status/leader")
    assert status == 200 and ":4647" in body, (status, body)
    with pytest.raises(ssl.SSLCertVerificationError):
        socket_ctx = ssl.create_default_context()  # the system's CAs: not the cluster's
        with socket.create_connection((addr, 4646), timeout=5) as raw:
            socket_ctx.wrap_socket(raw, server_hostname=addr)


@pytest.mark.parametrize("port", [6380, 26380], ids=["redis", "sentinel"])
def test_redis_and_sentinel_speak_tls_only(cluster, other_ca, port):
    for host in cluster.hosts:
        addr = cluster.addr[host]
        answer = plain_answer(addr, port, b"PING\r\n")
        assert not answer.startswith((b"+", b"-")), f"{host}:{port} answered plain text: {answer!r}"
        foreign = tls_session(addr, port, None, cert=other_ca)
        assert refused_after_handshake(foreign), f"{host}:{port} accepted a certificate from another CA"
        # Without a client certificate (what the services do), TLS verified
        # by the address, and Redis asks for credentials: the link works.
        s = tls_session(addr, port, None, verify_host=True)
        assert not isinstance(s, str), f"{host}:{port}: {s}"
        with s:
            s.sendall(b"PING\r\n")
            assert s.recv(64).startswith(b"-NOAUTH"), f"{host}:{port} over TLS"


def test_the_gateway_serves_https_with_the_clusters_certificate(cluster):
    for host in cluster.hosts:
        url = f"https://{cluster.addr[host]}:8443"
        status, body = http(url + "/", headers={"Accept": "text/plain"})
        assert status == 200 and body.strip().isdigit(), (host, status, body[:200])
        status, _ = http(url + "/metrics")
        assert status == 404, f"{host}: /metrics reachable over HTTPS ({status})"
        # The system's CAs do not know the cluster's.
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            http(url + "/", context=ssl.create_default_context())
    before = int(http(f"https://{cluster.addr[cluster.hosts[0]]}:8443/", headers={"Accept": "text/plain"})[1])
    status, _ = http(f"https://{cluster.addr[cluster.hosts[1]]}:8443/inc", method="POST")
    assert status == 200
    after = int(http(f"https://{cluster.addr[cluster.hosts[0]]}:8443/", headers={"Accept": "text/plain"})[1])
    assert after >= before + 1


def test_traefik_api_answers_on_loopback_only(cluster):
    for host in cluster.hosts:
        addr = cluster.addr[host]
        status, _ = http(f"http://{addr}:8081/api/overview")
        assert status == 404, f"{host}: Traefik's API on the cluster address ({status})"
        status, _ = http(f"http://{addr}:8081/ping")
        assert status == 200, f"{host}: /ping for Consul's check ({status})"
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((addr, 8079), timeout=5).close()
        local = cluster.ssh(host, "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8079/api/overview").stdout
        assert local == "200", f"{host}: the API on loopback answered {local}"


def test_services_reach_consul_and_redis_over_tls(cluster):
    text = "".join(cluster.nomad("job", "inspect", job).stdout for job in ("web", "web-inc"))
    for setting in ('"https://127.0.0.1:8501"', "CONSUL_CACERT=/etc/counter/tls/consul-ca.pem",
                    "COUNTER_REDIS_TLS_CA=/etc/counter/tls/redis-ca.pem"):
        assert text.count(setting) == 2, f"web and web-inc should both get {setting}"
    # Redis and Sentinel run with no plain-text port at all (port 0).
    for host in cluster.hosts:
        ports = cluster.ssh(host, "grep -h '^port ' /var/lib/counter/redis-*/redis.conf "
                                  "/var/lib/counter/sentinel/sentinel.conf").stdout.split()
        assert ports == ["port", "0", "port", "0"], f"{host}: {ports}"


def test_tls_context_helper_refuses_a_wrong_name(cluster):
    """verify_host is meaningful: the gateway's certificate names its own
    machine, so checking it against another machine's address fails."""
    a, b = cluster.hosts[0], cluster.hosts[1]
    ctx = tls_context()
    with socket.create_connection((cluster.addr[a], 8443), timeout=5) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(raw, server_hostname=cluster.addr[b])


class Impostor:
    """A TLS server on this machine's loopback that presents a leaf of the
    cluster (STEM under TLS) and answers every request with ANSWER: what a
    stolen key could serve the clients of another role."""

    def __init__(self, stem, answer):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(TLS / f"{stem}.pem"), str(TLS / f"{stem}-key.pem"))
        self.answer = answer
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            try:
                conn.settimeout(5)
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(4096)
                    tls.sendall(self.answer)
            except (OSError, ssl.SSLError):
                pass

    def close(self):
        self.server.close()


HTTP_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"


@pytest.mark.parametrize("role", ["nomad", "consul", "redis"])
def test_a_leaf_of_another_role_cannot_serve_as_nomad_consul_or_redis(cluster, role):
    """Each client as the cluster configures it (the operators' CLIs from
    scripts/env, redis-cli with the CA the Redis peers, the role watch and
    the services trust) talks to a server presenting the gateway's leaf (the
    key most exposed): the handshake fails. The same server presenting the
    role's own leaf is believed (the positive control)."""
    host = cluster.hosts[0]
    if role == "redis":
        answer = b"+PONG\r\n"

        def client(port):
            return run(["redis-cli", "--tls", "--cacert", str(REDIS_CA), "-h", "127.0.0.1", "-p", str(port), "PING"],
                       check=False, timeout=10)
    else:
        answer = HTTP_ANSWER + (b"[]" if role == "nomad" else b"{}")

        def client(port):
            env = dict(cluster.env(), NOMAD_ADDR=f"https://127.0.0.1:{port}", CONSUL_HTTP_ADDR=f"https://127.0.0.1:{port}")
            cmd = ["job", "status"] if role == "nomad" else ["catalog", "services"]
            return run([str(BIN / role), *cmd], check=False, env=env, timeout=20)

    for stem, believed in ((f"{host}-gateway", False), (f"{host}-{role}", True)):
        impostor = Impostor(stem, answer)
        try:
            out = client(impostor.port)
        finally:
            impostor.close()
        said = out.stdout + out.stderr
        if believed:
            assert out.returncode == 0 and "certificate" not in said, f"{role} client refused {stem}: {said}"
        else:
            assert out.returncode != 0 and "PONG" not in said, f"{role} client believed {stem}: {said}"
            assert re.search(r"certificate|SSL|TLS", said), f"{role} client: not a TLS refusal: {said}"


def test_consul_fetches_nomads_keys_trusting_nomads_ca_alone(cluster):
    """The auth method that turns workload identities into Consul tokens
    fetches Nomad's signing keys over HTTPS: a server that could present
    another role's leaf there could have any forged identity accepted."""
    method = cluster.consul_api("/v1/acl/auth-method/nomad-workloads")
    assert method["Config"]["JWKSCACert"].strip() == NOMAD_CA.read_text().strip()


def https_status(addr, port, name, method="GET", path="/", cert=None):
    """The status of one request to a service instance over HTTPS, trusting
    the services CA and checking NAME, presenting CERT (a stem under TLS)."""
    context = ssl.create_default_context(cafile=str(SERVICES_CA))
    if cert:
        context.load_cert_chain(str(TLS / f"{cert}.pem"), str(TLS / f"{cert}-key.pem"))
    with socket.create_connection((addr, port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=name) as conn:
            conn.sendall(f"{method} {path} HTTP/1.1\r\nHost: {name}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                         .encode())
            response = HTTPResponse(conn)
            response.begin()
            return response.status


@pytest.mark.parametrize("job", ["web", "web-inc"])
def test_a_services_own_port_answers_the_gateway_alone(cluster, job):
    """From another machine (this one), around the gateway: plain HTTP to an
    instance's port gets no answer; HTTPS without a client certificate gets
    /health/* only (what the local Consul agent probes); a certificate of
    another CA fails the handshake; web's certificate does not pass for
    web-inc's. The operators' certificate of the services CA (as
    scripts/status reads /metrics) gets /metrics: the positive control;
    Prometheus' gets /metrics but no /inc, which the gateway's gets."""
    instances = [(e["Service"]["Address"], e["Service"]["Port"]) for e in cluster.consul_api(f"/v1/health/service/{job}")]
    assert instances, f"no {job} instance in the catalog"
    for addr, port in instances:
        answer = plain_answer(addr, port, b"POST /inc HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", timeout=5)
        assert not answer.startswith(b"HTTP/"), f"{job} at {addr}:{port} answered plain HTTP: {answer!r}"
        name = f"{job}.counter"
        assert https_status(addr, port, name, path="/health/ready") == 200
        assert https_status(addr, port, name, "POST", "/inc") == 403
        assert https_status(addr, port, name, path="/metrics") == 403
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            https_status(addr, port, name, path="/metrics", cert="cli")  # the Nomad CA's
        other = "web-inc.counter" if job == "web" else "web.counter"
        with pytest.raises(ssl.SSLCertVerificationError):
            https_status(addr, port, other, path="/health/ready")
        assert https_status(addr, port, name, path="/metrics", cert="cli-services") == 200
        # Prometheus' certificate is of the same CA, but not the gateway's:
        # /metrics, never an increment (the rest is the gateway's alone).
        host = cluster.hosts[0]
        assert https_status(addr, port, name, path="/metrics", cert=f"{host}-metrics-client") == 200
        assert https_status(addr, port, name, "POST", "/inc", cert=f"{host}-metrics-client") == 403
        assert https_status(addr, port, name, "POST", "/inc", cert=f"{host}-gateway-client") != 403
        assert cluster.t.service_get(job, f"{addr}:{port}", "/metrics")[0] == 200
