"""The one HTTP client of Consul's and Nomad's APIs, for every tool and test:
client.consul("https://10.0.0.1:8501", token=..., ca="ca.pem").get("/v1/catalog/services").

Tokens travel in headers (X-Consul-Token, X-Nomad-Token), never in URLs or
argv. An https:// address is verified against the given CA, with a client
certificate when one is given. A GET that fails before any answer (a
connection refused or reset: an agent restarting) is tried again, a write
never is: it may have been applied. Standard library only: the role watch
runs this on every host with Debian's python3.
"""

import functools
import json
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


class Api:
    def __init__(self, header, base, token=None, ca=None, cert=None, key=None, timeout=10.0, retries=2):
        self.base = base.rstrip("/")
        self.header, self.token = header, token
        self.context = None
        if base.startswith("https:"):  # trusting CA (or the system's CAs), presenting CERT
            self.context = ssl.create_default_context(cafile=ca)
            if cert:
                self.context.load_cert_chain(cert, key)
        self.timeout, self.retries = timeout, retries

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
        try:
            with self.open(method, path, body, params, timeout, token) as resp:
                status, text = resp.status, resp.read()
        except ApiError as err:
            if err.status not in ok:
                raise
            return err.status, None
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, text.decode(errors="replace")

    def get(self, path, params=None, missing_ok=False, **kw):
        """The decoded body; None for a 404 when MISSING_OK."""
        status, body = self.call("GET", path, params=params, ok=(200, 404) if missing_ok else (200,), **kw)
        return body if status == 200 else None

    def text(self, path, params=None, timeout=None):
        with self.open("GET", path, params=params, timeout=timeout) as resp:
            return resp.read().decode(errors="replace")

    def send(self, method, path, body=None, **kw):
        """The decoded body of a write: api.put(path, body), api.post(path, body), api.delete(path)."""
        return self.call(method, path, body, **kw)[1]

    put = functools.partialmethod(send, "PUT")
    post = functools.partialmethod(send, "POST")
    delete = functools.partialmethod(send, "DELETE")


# consul(addr, token=None, ca=None, cert=None, key=None, timeout=..., retries=...), nomad(...) the same.
consul = functools.partial(Api, "X-Consul-Token")
nomad = functools.partial(Api, "X-Nomad-Token")
