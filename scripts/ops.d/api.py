"""Read-only access to the Nomad and Consul HTTP APIs for scripts/status and
scripts/logs. The addresses come from NOMAD_ADDR and CONSUL_HTTP_ADDR (the
wrappers set them for the local stack or the cluster); NOMAD_TOKEN and
CONSUL_HTTP_TOKEN (or CONSUL_HTTP_TOKEN_FILE), when set, are sent as headers,
never printed. An https:// address is verified against NOMAD_CACERT or
CONSUL_CACERT (the CLIs' own variables), with NOMAD_CLIENT_CERT/KEY or
CONSUL_CLIENT_CERT/KEY as the client certificate when set. Standard library
only.
"""

import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request

TIMEOUT = 3  # seconds, for any one request that is not a log stream


class ApiError(Exception):
    pass


def tls_context(prefix):
    """The TLS context the nomad or consul CLI would use (PREFIX_CACERT,
    PREFIX_CLIENT_CERT, PREFIX_CLIENT_KEY), or None for the system's."""
    ca = os.environ.get(f"{prefix}_CACERT")
    if not ca:
        return None
    ctx = ssl.create_default_context(cafile=ca)
    cert = os.environ.get(f"{prefix}_CLIENT_CERT")
    if cert:
        ctx.load_cert_chain(cert, os.environ.get(f"{prefix}_CLIENT_KEY"))
    return ctx


class Api:
    def __init__(self, base, token_header, token, context=None):
        self.base = base.rstrip("/")
        self.headers = {token_header: token} if token else {}
        self.context = context

    def open(self, path, params=None, timeout=TIMEOUT):
        url = self.base + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        req = urllib.request.Request(url, headers=self.headers)
        try:
            return urllib.request.urlopen(req, timeout=timeout, context=self.context)
        except urllib.error.HTTPError as e:
            body = e.read(200).decode(errors="replace").strip()
            raise ApiError(f"{self.base}{path}: HTTP {e.code} {body}") from None
        except OSError as e:
            raise ApiError(f"{self.base}{path}: {e}") from None

    def get(self, path, params=None, timeout=TIMEOUT):
        with self.open(path, params, timeout) as r:
            return json.load(r)

    def text(self, path, params=None, timeout=TIMEOUT):
        with self.open(path, params, timeout) as r:
            return r.read().decode(errors="replace")


def _token_file(var):
    path = os.environ.get(var)
    if path:
        with open(path) as f:
            return f.read().strip()
    return None


def nomad():
    return Api(os.environ["NOMAD_ADDR"], "X-Nomad-Token",
               os.environ.get("NOMAD_TOKEN") or _token_file("NOMAD_TOKEN_FILE"), tls_context("NOMAD"))


def consul():
    return Api(os.environ["CONSUL_HTTP_ADDR"], "X-Consul-Token",
               os.environ.get("CONSUL_HTTP_TOKEN") or _token_file("CONSUL_HTTP_TOKEN_FILE"), tls_context("CONSUL"))


def allocations(api, jobs=None, running_only=True):
    """The allocations of the given jobs (all jobs when None), newest first."""
    allocs = api.get("/v1/allocations")
    out = []
    for a in allocs:
        if jobs and a["JobID"] not in jobs:
            continue
        if running_only and a["ClientStatus"] != "running":
            continue
        out.append(a)
    out.sort(key=lambda a: (a["JobID"], a.get("NodeName", ""), a["ID"]))
    return out


def alloc_tasks(alloc):
    """Task names of an allocation (its task states, else its group's name)."""
    return sorted((alloc.get("TaskStates") or {}).keys()) or [alloc["TaskGroup"]]
