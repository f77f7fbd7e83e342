"""Shared helpers for the end-to-end tests of the running local stack.

The stack is started by `scripts/up` and left running; these tests only talk
to it over loopback (the gateway on 127.0.0.1:8080, Traefik's admin API on
127.0.0.1:8081, Consul and Nomad on their local agents) and through the
consul and nomad CLIs that scripts/install built. Standard library only,
but for test_page.py's selenium (the e2e venv of scripts/install).
"""

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from counterops import target

REPO = Path(__file__).resolve().parents[2]
# Mirrors scripts/lib.sh.
CACHE = Path(
    os.environ.get("COUNTER_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "counter"
)
STATE = Path(os.environ.get("COUNTER_STATE") or CACHE / "local")
GATEWAY = "http://127.0.0.1:8080"
# Traefik's API and dashboard: loopback only, their own entrypoint.
TRAEFIK_API = "http://127.0.0.1:8079/api"
CONSUL = "http://127.0.0.1:8500"
NOMAD = "http://127.0.0.1:4646"
TIMEOUT = 5  # seconds, for any single HTTP request
# The local stack's ACL tokens (scripts/up generates them; scripts/env hands
# them to a shell). Mirrors scripts/counterops/target.py.
SECRETS = STATE / "secrets"
NOMAD_TOKEN_FILE = SECRETS / "nomad-management.token"
CONSUL_TOKEN_FILE = SECRETS / "consul-management.token"


def token_headers(url):
    """The management token header for a request to the local Nomad or Consul."""
    if url.startswith(NOMAD) and NOMAD_TOKEN_FILE.exists():
        return {"X-Nomad-Token": NOMAD_TOKEN_FILE.read_text().strip()}
    if url.startswith(CONSUL) and CONSUL_TOKEN_FILE.exists():
        return {"X-Consul-Token": CONSUL_TOKEN_FILE.read_text().strip()}
    return {}


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self):
        return self.body.decode()

    def json(self):
        return json.loads(self.body)


def http(url, method="GET", headers=None, data=None, anonymous=False):
    """One request; HTTP error statuses are returned, not raised. Requests to
    the local Nomad and Consul carry the management token unless anonymous."""
    headers = dict(headers or {}) if anonymous else {**token_headers(url), **(headers or {})}
    req = urllib.request.Request(url, method=method, headers=headers, data=data)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
            return Response(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, e.headers, e.read())


def get_json(url):
    r = http(url)
    assert r.status == 200, f"GET {url}: {r.status} {r.text}"
    return r.json()


def tool_env(anonymous=False):
    """The environment of the consul and nomad CLIs: the project's tools first
    on PATH, the local agents, and (unless anonymous) the local stack's
    management tokens, as after eval "$(scripts/env)"."""
    env = dict(os.environ, PATH=f"{CACHE / 'bin'}:{os.environ['PATH']}",
               CONSUL_HTTP_ADDR=CONSUL, NOMAD_ADDR=NOMAD)
    for var in ("NOMAD_TOKEN", "CONSUL_HTTP_TOKEN", "CONSUL_HTTP_TOKEN_FILE"):
        env.pop(var, None)
    if not anonymous:
        if NOMAD_TOKEN_FILE.exists():
            env["NOMAD_TOKEN"] = NOMAD_TOKEN_FILE.read_text().strip()
        if CONSUL_TOKEN_FILE.exists():
            env["CONSUL_HTTP_TOKEN_FILE"] = str(CONSUL_TOKEN_FILE)
    return env


def run(*args, check=True, anonymous=False):
    """Runs a command with the project's tools first on PATH and the local
    stack's tokens (none if anonymous)."""
    env = tool_env(anonymous)
    p = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    if check:
        assert p.returncode == 0, f"{' '.join(args)} exited {p.returncode}:\n{p.stdout}{p.stderr}"
    return p


def redis(port=6380):
    """A connection to a local Redis node as its `check` user (ROLE, INFO,
    GET counter), with the password scripts/up generated."""
    return target.local().redis("127.0.0.1", port)


def sentinel():
    return target.local().sentinel("127.0.0.1")


def wait_for(what, predicate, timeout=20.0, interval=0.25):
    """Polls predicate() until it returns a truthy value; fails after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="session", autouse=True)
def stack_is_up():
    """Fails every test at once, clearly, when the stack is not running."""
    try:
        http(GATEWAY + "/")
    except OSError as e:
        pytest.fail(f"the local stack is not answering on {GATEWAY} ({e}); start it with scripts/up",
                    pytrace=False)
