"""The gateway's retry on /inc is safe: Traefik (the standard engine, the
gateway's) sends a POST to another instance only when it could not reach
the first one at all, never once the first one got the request.

Runs this checkout's Traefik binary with the same retry middleware as the
web-inc job (nomad/web-inc.nomad.hcl) in front of two local backends on
loopback: one that counts each POST and answers 200, and either a port that
refuses connections (an instance gone since the catalog last looked: the
request must go to the other) or one that takes the request and closes
without answering (it may have counted: the client must get 502, and the
request must not reach the other)."""

import http.client
import http.server
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import free_port

from counterops.target import CACHE

REQUESTS = 60
# The web-inc job's own retry middleware: the test runs what the job asks for.
ATTEMPTS = int(re.search(r"web-inc-retry\.retry\.attempts=(\d+)",
                         (Path(__file__).resolve().parents[2] / "nomad/web-inc.nomad.hcl").read_text()).group(1))


class Backend:
    """A loopback HTTP server counting the POSTs it received; answers 200,
    or, with close=True, closes the connection without an answer."""

    def __init__(self, close=False):
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                with backend.lock:
                    backend.received += 1
                if close:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.send_response(200)
                self.send_header("Content-Length", "3")
                self.end_headers()
                self.wfile.write(b"ok\n")

            def log_message(self, *args):
                pass

        self.lock, self.received = threading.Lock(), 0
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway(tmp_path):
    """start(first_port, second_port) runs Traefik routing POST /inc to both
    (round robin) through web-inc's retry middleware; its entry port."""
    procs = []

    def start(first, second):
        entry = free_port()
        (tmp_path / "dynamic.yml").write_text(f"""
http:
  routers:
    inc:
      rule: PathPrefix(`/inc`)
      entryPoints: [web]
      service: inc
      middlewares: [inc-retry]
  middlewares:
    inc-retry:
      retry:
        attempts: {ATTEMPTS}
  services:
    inc:
      loadBalancer:
        servers:
          - url: http://127.0.0.1:{first}
          - url: http://127.0.0.1:{second}
""")
        (tmp_path / "traefik.yml").write_text(f"""
entryPoints:
  web:
    address: 127.0.0.1:{entry}
providers:
  file:
    filename: {tmp_path / "dynamic.yml"}
log:
  level: ERROR
""")
        procs.append(subprocess.Popen([str(CACHE / "bin/traefik"), f"--configFile={tmp_path / 'traefik.yml'}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if post(entry) != 404:
                    return entry
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("Traefik did not route /inc within 15 s")

    yield start
    for p in procs:
        p.terminate()
        p.wait(10)


def post(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", "/inc")
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_an_increment_that_could_not_reach_an_instance_goes_to_another(gateway):
    counting = Backend()
    try:
        entry = gateway(free_port(), counting.port)  # the first refuses: nothing listens
        before = counting.received
        statuses = [post(entry) for _ in range(REQUESTS)]
        assert statuses == [200] * REQUESTS, statuses
        assert counting.received - before == REQUESTS, "each increment reached an instance once"
    finally:
        counting.stop()


def test_an_increment_an_instance_received_is_never_sent_to_another(gateway):
    closing, counting = Backend(close=True), Backend()
    try:
        entry = gateway(closing.port, counting.port)
        closing.received = counting.received = 0
        statuses = [post(entry) for _ in range(REQUESTS)]
        # Round robin: about half went to the instance that closed on them.
        assert statuses.count(502) == closing.received > 0, (statuses, closing.received)
        assert statuses.count(200) == counting.received, "a request the first instance got was re-sent"
        assert closing.received + counting.received == REQUESTS
    finally:
        closing.stop()
        counting.stop()


def test_the_gateway_runs_the_standard_engine_that_makes_the_retry_safe():
    """The fast proxy re-sends a POST whose body failed (docs/benchmarks.md):
    with it, the retry on /inc could count an increment twice."""
    repo = Path(__file__).resolve().parents[2]
    for config in ("traefik/traefik.yml", "nomad/traefik.nomad.hcl"):
        lines = [line.split("#", 1)[0].lower() for line in (repo / config).read_text().splitlines()]
        assert not any("fastproxy" in line or "experimental" in line for line in lines), \
            f"{config} turns on the fast proxy"

