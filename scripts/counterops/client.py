"""The one HTTP client of Consul's and Nomad's APIs, for every tool and test.

    consul = client.consul("https://10.0.0.1:8501", token=..., ca="ca.pem")
    consul.get("/v1/catalog/services")               # decoded JSON
    consul.put("/v1/acl/policy", {...})
    index, entries = consul.watch("/v1/health/service/web", index)   # blocking query

Tokens travel in headers (X-Consul-Token, X-Nomad-Token), never in URLs or
argv. An https:// address is verified against the given CA, with a client
certificate when one is given. A GET that fails before any answer (a
connection refused or reset: an agent restarting) is tried again, a write
never is: it may have been applied. Standard library only: the role watch
runs this on every host with Debian's python3.
"""

import json
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request


class ApiError(Exception):
    """An answer outside the statuses the caller accepts, or no answer at all
    (status None)."""

    def __init__(self, method, url, status, detail):
        super().__init__(f"{method} {url}: {'HTTP ' + str(status) + ' ' if status else ''}{detail}")
        self.status = status


def tls_context(ca=None, cert=None, key=None):
    """A client context trusting CA (or the system's CAs), presenting CERT."""
    ctx = ssl.create_default_context(cafile=ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


class Api:
    def __init__(self, base, header, token=None, context=None, timeout=10.0, retries=2):
        self.base = base.rstrip("/")
        self.header, self.token = header, token
        self.context = context if base.startswith("https:") else None
        self.timeout, self.retries = timeout, retries

    def __repr__(self):
        return f"Api({self.base})"

    def open(self, method, path, body=None, params=None, timeout=None, token=None):
        """The raw response (for streams); raises ApiError on an HTTP error."""
        url = self.base + path + ("?" + urllib.parse.urlencode(params) if params else "")
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(url, data=data, method=method)
        token = self.token if token is None else token
        if token:
            req.add_header(self.header, token)
        attempts = 1 + (self.retries if method == "GET" else 0)
        for attempt in range(attempts):
            try:
                return urllib.request.urlopen(req, timeout=timeout or self.timeout, context=self.context)
            except urllib.error.HTTPError as err:
                raise ApiError(method, url, err.code, err.read(300).decode(errors="replace").strip()) from None
            except OSError as err:
                if attempt + 1 == attempts:
                    raise ApiError(method, url, None, str(getattr(err, "reason", err))) from None
                time.sleep(0.3 * (attempt + 1))

    def call(self, method, path, body=None, params=None, ok=(200,), timeout=None, token=None):
        """(status, decoded body) of one request whose status is in OK."""
        return self._call(method, path, body, params, ok, timeout, token)[:2]

    def _call(self, method, path, body, params, ok, timeout, token):
        try:
            with self.open(method, path, body, params, timeout, token) as resp:
                status, text, headers = resp.status, resp.read(), resp.headers
        except ApiError as err:
            if err.status not in ok:
                raise
            return err.status, None, {}
        try:
            decoded = json.loads(text) if text else None
        except ValueError:
            decoded = text.decode(errors="replace")
        return status, decoded, headers

    def get(self, path, params=None, missing_ok=False, **kw):
        """The decoded body; None for a 404 when MISSING_OK."""
        status, body = self.call("GET", path, params=params, ok=(200, 404) if missing_ok else (200,), **kw)
        return body if status == 200 else None

    def text(self, path, params=None, timeout=None):
        with self.open("GET", path, params=params, timeout=timeout) as resp:
            return resp.read().decode(errors="replace")

    def put(self, path, body=None, **kw):
        return self.call("PUT", path, body, **kw)[1]

    def post(self, path, body=None, **kw):
        return self.call("POST", path, body, **kw)[1]

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)[1]

    def watch(self, path, index=None, wait="30s", params=None):
        """A blocking query: (new index, body) once the result changes after
        INDEX or WAIT passed (Consul and Nomad both take index and wait)."""
        params = dict(params or {}, wait=wait, **({"index": index} if index else {}))
        _, body, headers = self._call("GET", path, None, params, (200,), self.timeout + 40, None)
        return headers.get("X-Consul-Index") or headers.get("X-Nomad-Index"), body


def read_token(path):
    with open(path) as f:
        return f.read().strip()


def consul(addr, token=None, ca=None, cert=None, key=None, **kw):
    return Api(addr, "X-Consul-Token", token, tls_context(ca, cert, key) if addr.startswith("https:") else None, **kw)


def nomad(addr, token=None, ca=None, cert=None, key=None, **kw):
    return Api(addr, "X-Nomad-Token", token, tls_context(ca, cert, key) if addr.startswith("https:") else None, **kw)


def from_env(kind):
    """The API the consul or nomad CLI would reach, from the same variables
    (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN[_FILE], CONSUL_CACERT, ...;
    NOMAD_ADDR, NOMAD_TOKEN, NOMAD_CACERT, ...)."""
    env = os.environ
    if kind == "consul":
        addr = env.get("CONSUL_HTTP_ADDR", "http://127.0.0.1:8500")
        addr = addr if "://" in addr else "http://" + addr
        token = env.get("CONSUL_HTTP_TOKEN") or (read_token(env["CONSUL_HTTP_TOKEN_FILE"])
                                                 if env.get("CONSUL_HTTP_TOKEN_FILE") else None)
        return consul(addr, token, env.get("CONSUL_CACERT"), env.get("CONSUL_CLIENT_CERT"), env.get("CONSUL_CLIENT_KEY"))
    token = env.get("NOMAD_TOKEN") or None
    return nomad(env.get("NOMAD_ADDR", "http://127.0.0.1:4646"), token, env.get("NOMAD_CACERT"),
                 env.get("NOMAD_CLIENT_CERT"), env.get("NOMAD_CLIENT_KEY"))
