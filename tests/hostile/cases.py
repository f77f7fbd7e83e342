"""The hostile cases: generated, deterministic for a given seed.

A case is a list of steps sent on one fresh TCP connection: bytes to send,
a float (seconds to sleep), or CLOSE (close our side and stop). Every case
must be answered with a 4xx, or with the connection closed, never with a 2xx
or a 5xx; `valid_first` leading responses belong to a valid request placed
in front on purpose (pipelining) and may be 200.

No path here may normalize to a route (`/`, `/inc`): a gateway that cleans
`/a/../inc` into `/inc` would rightly serve it, and the suite would blame it.
"""

import random
from dataclasses import dataclass

CLOSE = object()

# Slow senders keep sending for longer than the service's header read timeout
# (5 s), which must cut them off; these bound each slow case.
SLOW_SPAN = 6.5
SLOW_STEP = 0.5


@dataclass
class Case:
    name: str
    family: str
    steps: list
    # Responses of valid requests put in front of the hostile bytes on purpose.
    valid_first: int = 0
    # A case that keeps the connection busy for seconds (slowloris and kin).
    slow: bool = False
    # Against the service itself the connection must be closed by the server
    # within this many seconds of the first byte (timeouts); None: not checked.
    closed_within: float | None = None
    # The request is HEAD: its answer has headers only.
    head: bool = False
    # Through a gateway: not sent, because the RFCs let a gateway normalize it
    # into a well-formed request and serve it (the count would rightly change).
    gateway_skip: str = ""
    # Through a gateway: further statuses the gateway itself may answer, and why.
    gateway_ok: tuple = ()
    gateway_why: str = ""
    # Sends the HTTP/2 preface: a gateway that speaks h2c may answer in HTTP/2.
    h2: bool = False


def req(method, target, headers=(("Host", "counter.test"),), body=b"", version="HTTP/1.1"):
    """Bytes of one request; method, target and header parts may be bytes or str."""
    def b(x):
        return x if isinstance(x, bytes) else x.encode("utf-8", "surrogateescape")
    head = b(method) + b" " + b(target) + b" " + b(version) + b"\r\n"
    for name, value in headers:
        head += b(name) + b": " + b(value) + b"\r\n"
    return head + b"\r\n" + b(body)


HOST = ("Host", "counter.test")
VALID_GET = req("GET", "/", [HOST, ("Accept", "text/plain")])

# Methods: unknown, wrong case, overlong, not allowed on the route, or not a token.
METHODS = [
    "FOO", "get", "post", "Get", "pOST", "GETT", "G", "POSTX", "X" * 100, "X" * 5000,
    "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND", "MKCOL", "LOCK", "BREW",
    "QUIT", "M-SEARCH", "SEARCH", "LINK", "ACL", "PURGE",
    b"G\x00ET", b"GE\tT", b"\xc7\xb5ET", b"POST\x7f", b"@@@", b"(POST)", b"GET/",
    "\u0047\u0045\u0054\u200b",  # GET + zero-width space
]
METHOD_TARGETS = ["/", "/inc", "/health/live"]

# Paths that must never reach a route: traversal, encodings, NULs, overlong UTF-8.
PATHS = [
    "/../../etc/passwd", "/inc/../../etc/passwd", "/..%2f..%2fetc%2fpasswd",
    "/%2e%2e/%2e%2e/etc/passwd", "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "/.%2e/.%2e/etc/passwd",
    "/%252e%252e/%252e%252e/etc/passwd", "/%25252e%25252e/etc/passwd",
    "/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd", "/%c0%af..%c0%afetc/passwd",
    "/%e0%80%ae%e0%80%ae/etc/passwd", "/..;/..;/etc/passwd", "/..%5c..%5cwindows%5cwin.ini",
    "/etc/passwd%00", "/%00", "/inc%00", "/inc%00.html", "/%00/inc.x", "/inc%2f..%2fsecret",
    "/inc/x", "/incx", "/INC", "/Inc", "/inc.json", "/inc;jsessionid=1", "/%69nc",
    "/health/../../secret", "/metrics/../../../etc/shadow", "/%ff%fe%fd", "/%", "/%zz",
    "/%u002e%u002e/etc/passwd", "/~root/.ssh/id_rsa", "/.git/config", "/.env",
    "/cgi-bin/../../bin/sh", "/" + "a/" * 400 + "x", "/" + "%2e%2e/" * 300 + "etc/passwd",
    "/" + "x" * 8000,
    # Raw bytes a lenient parser might pass on: NUL, overlong UTF-8, high bytes, controls.
    b"/\x00", b"/etc/passwd\x00.png", b"/\xc0\xae\xc0\xae/etc/passwd", b"/\xff\xfe",
    b"/\xe2\x80\xae/etc", b"/a\x7fb", b"/a\x1bb", b"/\\..\\..\\etc\\passwd", b"/a b/secret",
]
PATH_METHODS = ["GET", "POST"]

# Request targets that are not origin-form: asterisk, absolute, authority, junk.
TARGETS = [
    ("GET", "*"), ("POST", "*"), ("OPTIONS", "*"), ("GET", "**"),
    ("GET", "http://evil.test/etc/passwd"), ("POST", "http://evil.test/etc/passwd"),
    ("GET", "http://evil.test:99999/x"), ("GET", "http://[::1/x"), ("GET", "ftp://evil.test/etc/passwd"),
    ("GET", "http://user:pw@evil.test/admin"), ("GET", "file:///etc/passwd"),
    ("GET", "javascript:alert(1)"), ("POST", "evil.test:443"), ("CONNECT", "evil.test:443"),
    ("CONNECT", "127.0.0.1:6379"), ("CONNECT", "/"), ("GET", "evil.test"), ("GET", "?x=1"),
    ("GET", "#frag"), ("GET", ""), ("POST", "inc"), ("GET", "//evil.test/x"),
]


# Where Traefik (Go's net/http) lawfully differs from the services; see docs/services.md.
GATEWAY_SKIP = {
    "path GET /%69nc": "RFC 3986 6.2.2.2: %69 is 'i', so /%69nc is /inc, and Traefik normalizes it",
    "path POST /%69nc": "RFC 3986 6.2.2.2: %69 is 'i', so /%69nc is /inc, and Traefik normalizes it",
    "header TE on HTTP/1.0": "RFC 9112 6.1 lets a server process it, then close; Go ignores the TE and serves the POST",
    "header obs-fold continuation": "RFC 9112 5.2 lets a server unfold obs-fold instead of refusing",
    "header CL 0 and TE smuggling a POST": "RFC 9112 6.3: TE wins over CL, which makes both POSTs well-formed; Go serves both",
}
GATEWAY_OK = {
    "target OPTIONS *": ((200,), "Go answers OPTIONS * itself (RFC 9110 9.3.7); nothing reaches a service"),
    "target CONNECT": ((501,), "Traefik does not implement CONNECT: 501"),
    "header TE gzip": ((501,), "RFC 9112 6.1: an unknown transfer coding gets 501"),
    "header TE chunked, identity": ((501,), "RFC 9112 6.1: an unknown transfer coding gets 501"),
    "header TE chunked twice": ((501,), "RFC 9112 6.1: an unknown transfer coding gets 501"),
    "header TE xchunked": ((501,), "RFC 9112 6.1: an unknown transfer coding gets 501"),
    # Traefik's ComputeStatusCode (pkg/proxy/httputil/proxy.go) maps the body's
    # read error to 500, but a net.Error or io.EOF from the backend connection,
    # which the transport closes once the client's body fails, to 502: which of
    # the two it sees first is a race. Either way the request is not counted.
    "body chunked": ((500, 502), "traefik/traefik#11087: an invalid chunked body gets 500, or 502 when the "
                     "backend connection's close is seen first (fix pending, traefik#13528)"),
    "protocol HTTP/2.0": ((505,), "RFC 9110 15.6.6: 505 for an unsupported major version"),
    "protocol HTTP/3.0": ((505,), "RFC 9110 15.6.6: 505 for an unsupported major version"),
    "protocol HTTP/9.9": ((505,), "RFC 9110 15.6.6: 505 for an unsupported major version"),
}


def _gateway_rules(cases):
    for c in cases:
        c.gateway_skip = GATEWAY_SKIP.get(c.name, "")
        for prefix, (statuses, why) in GATEWAY_OK.items():
            if c.name.startswith(prefix):
                c.gateway_ok, c.gateway_why = statuses, why
        c.h2 = any(isinstance(x, bytes) and b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" in x for x in c.steps)
    return cases


def _method_cases():
    out = []
    for m in METHODS:
        for t in METHOD_TARGETS:
            label = (m if isinstance(m, str) else m.decode("latin-1"))[:12].encode("unicode_escape").decode()
            out.append(Case(f"method {label!s} {t}", "method", [req(m, t, [HOST, ("Content-Length", "0")])]))
    return out


def _path_cases():
    out = []
    for p in PATHS:
        for m in PATH_METHODS:
            label = (p if isinstance(p, str) else p.decode("latin-1"))[:40].encode("unicode_escape").decode()
            out.append(Case(f"path {m} {label}", "path", [req(m, p, [HOST, ("Content-Length", "0")])]))
    return out


def _target_cases():
    return [Case(f"target {m} {t[:40]}", "target", [req(m, t, [HOST, ("Content-Length", "0")])])
            for m, t in TARGETS]


def _header_cases():
    post = "POST"
    inc = "/inc"
    cases = {
        # Size: one giant header, a giant request line, thousands of headers.
        "giant header 17 KiB": req("GET", "/", [HOST, ("X-Big", "a" * 17 * 1024)]),
        "giant header 64 KiB": req(post, inc, [HOST, ("X-Big", "a" * 64 * 1024)]),
        "giant header 1 MiB": req(post, inc, [HOST, ("X-Big", "a" * 1024 * 1024)]),
        "giant header name": req(post, inc, [HOST, ("X" * 20000, "v")]),
        "giant cookie": req("GET", "/", [HOST, ("Cookie", "; ".join(f"c{i}=v" for i in range(3000)))]),
        "101 headers": req(post, inc, [HOST] + [(f"X-H{i}", "v") for i in range(100)]),
        "1000 headers": req(post, inc, [HOST] + [(f"X-H{i}", "v") for i in range(1000)]),
        "5000 headers": req("GET", "/", [HOST] + [(f"X-H{i}", "v") for i in range(5000)]),
        "2000 Accept headers": req(post, inc, [HOST] + [("Accept", "*/*")] * 2000),
        "giant Accept list": req(post, inc, [HOST, ("Accept", ",".join(["x/y;q=0.1"] * 1500))]),
        # Host: missing, repeated, conflicting, not an authority.
        "no Host GET /": req("GET", "/", []),
        "no Host POST /inc": req(post, inc, [("Content-Length", "0")]),
        "two equal Hosts": req(post, inc, [HOST, HOST]),
        "two different Hosts": req(post, inc, [HOST, ("Host", "evil.test")]),
        "ten Hosts": req("GET", "/", [HOST] * 10),
        "Host with space": req(post, inc, [("Host", "a b")]),
        "Host with slash": req(post, inc, [("Host", "evil.test/x")]),
        "Host with userinfo": req(post, inc, [("Host", "user@evil.test")]),
        "Host bad port": req(post, inc, [("Host", "evil.test:99999999")]),
        "Host bad IPv6": req(post, inc, [("Host", "[::1")]),
        "Host control char": req(post, inc, [("Host", b"a\x01b")]),
        "Host high bytes": req(post, inc, [("Host", b"\xff\xfe")]),
        # Content-Length: repeated with different values, malformed, overflowing.
        "two Content-Lengths 0 and 5": req(post, inc, [HOST, ("Content-Length", "0"), ("Content-Length", "5")], b"hello"),
        "Content-Length list 0, 5": req(post, inc, [HOST, ("Content-Length", "0, 5")], b"hello"),
        "Content-Length negative": req(post, inc, [HOST, ("Content-Length", "-1")]),
        "Content-Length plus sign": req(post, inc, [HOST, ("Content-Length", "+0")]),
        "Content-Length hex": req(post, inc, [HOST, ("Content-Length", "0x0")]),
        "Content-Length text": req(post, inc, [HOST, ("Content-Length", "zero")]),
        "Content-Length empty": req(post, inc, [HOST, ("Content-Length", "")]),
        "Content-Length overflow": req(post, inc, [HOST, ("Content-Length", "9" * 40)]),
        "Content-Length huge": req(post, inc, [HOST, ("Content-Length", "1000000000")]),
        "Content-Length with space inside": req(post, inc, [HOST, ("Content-Length", "1 0")]),
        # Content-Length with Transfer-Encoding: request smuggling's shape.
        "CL then TE": req(post, inc, [HOST, ("Content-Length", "5"), ("Transfer-Encoding", "chunked")], b"0\r\n\r\n"),
        "TE then CL": req(post, inc, [HOST, ("Transfer-Encoding", "chunked"), ("Content-Length", "5")], b"0\r\n\r\n"),
        "CL 0 and TE smuggling a POST": req(post, inc, [HOST, ("Content-Length", "0"), ("Transfer-Encoding", "chunked")],
                                            b"0\r\n\r\n" + req(post, inc, [HOST])),
        "TE chunked": req(post, inc, [HOST, ("Transfer-Encoding", "chunked")], b"0\r\n\r\n"),
        "TE gzip": req(post, inc, [HOST, ("Transfer-Encoding", "gzip")]),
        "TE chunked twice": req(post, inc, [HOST, ("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")],
                                b"0\r\n\r\n"),
        "TE chunked, identity": req(post, inc, [HOST, ("Transfer-Encoding", "chunked, identity")], b"0\r\n\r\n"),
        "TE xchunked": req(post, inc, [HOST, ("Transfer-Encoding", "xchunked")], b"0\r\n\r\n"),
        "TE with tab": req(post, inc, [HOST, ("Transfer-Encoding", "\tchunked")], b"0\r\n\r\n"),
        "TE on HTTP/1.0": req(post, inc, [HOST, ("Transfer-Encoding", "chunked")], b"0\r\n\r\n", version="HTTP/1.0"),
        # Malformed header lines.
        "header without colon": req(post, inc, [HOST, ("X-No-Colon", "v")]).replace(b"X-No-Colon: v", b"X-No-Colon v"),
        "header name with space": req(post, inc, [HOST, ("Bad Name", "v")]),
        "header name empty": req(post, inc, [HOST, ("", "v")]),
        "header value NUL": req(post, inc, [HOST, ("X-A", b"a\x00b")]),
        "header value bare CR": req(post, inc, [HOST, ("X-A", b"a\rb")]),
        "obs-fold continuation": req(post, inc, [HOST, ("X-A", "a\r\n b")]),
        "space before colon": req(post, inc, [HOST, ("Content-Length ", "0")]),
        "Accept binary": req(post, inc, [HOST, ("Accept", b"\xff\xfe")]),
        "Accept image only": req(post, inc, [HOST, ("Accept", "image/png")]),
        "Accept q=0 everywhere": req(post, inc, [HOST, ("Accept", "*/*;q=0")]),
        "Accept garbage": req(post, inc, [HOST, ("Accept", "garbage;;;q=x")]),
        "Expect 100-continue, huge": req(post, inc, [HOST, ("Expect", "100-continue"), ("Content-Length", "1000000000")]),
        "Upgrade h2c without Host": req(post, inc, [("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
                                                     ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")]),
        "Upgrade websocket to /inc, bad Accept": req("GET", inc, [HOST, ("Connection", "Upgrade"),
                                                                   ("Upgrade", "websocket"), ("Accept", "image/png")]),
    }
    return [Case(f"header {name}", "header", [data]) for name, data in cases.items()]


def _body_cases():
    post, inc = "POST", "/inc"
    chunk = lambda n: f"{n:x}\r\n".encode() + b"z" * n + b"\r\n"  # noqa: E731
    te = [HOST, ("Transfer-Encoding", "chunked")]
    cases = {
        "body 1025 bytes": [req(post, inc, [HOST, ("Content-Length", "1025")], b"b" * 1025)],
        "body 64 KiB": [req(post, inc, [HOST, ("Content-Length", str(64 * 1024))], b"b" * 64 * 1024)],
        "body 1 MiB declared, 0 sent": [req(post, inc, [HOST, ("Content-Length", str(1 << 20))])],
        "chunked 8 KiB": [req(post, inc, te, chunk(4096) * 2 + b"0\r\n\r\n")],
        "chunked size garbage": [req(post, inc, te, b"zz\r\nabc\r\n0\r\n\r\n")],
        "chunked size negative": [req(post, inc, te, b"-1\r\nabc\r\n0\r\n\r\n")],
        "chunked size overflow": [req(post, inc, te, b"ffffffffffffffffffff\r\nabc\r\n0\r\n\r\n")],
        "chunked missing CRLF": [req(post, inc, te, b"3\r\nabcdef0\r\n\r\n")],
        "chunked extension flood": [req(post, inc, te, b"1;" + b"a=b;" * 4000 + b"\r\nx\r\n0\r\n\r\n")],
        "chunked trailer flood": [req(post, inc, te, b"0\r\n" + b"X-T: v\r\n" * 3000 + b"\r\n")],
        "chunked then close early": [req(post, inc, te, b"5\r\nab"), CLOSE],
        "body shorter than CL, then close": [req(post, inc, [HOST, ("Content-Length", "100")], b"x" * 10), CLOSE],
        "GET /inc body over cap": [req("GET", inc, [HOST, ("Content-Length", "2048")], b"g" * 2048)],
        "HEAD /inc": [req("HEAD", inc, [HOST])],
        "PUT /inc with body": [req("PUT", inc, [HOST, ("Content-Length", "3")], b"abc")],
    }
    return [Case(f"body {name}", "body", steps, head=name.startswith("HEAD")) for name, steps in cases.items()]


def _partial_cases():
    """A prefix of a request, then we close: nothing may be answered 2xx, nothing counted."""
    full = req("POST", "/inc", [HOST, ("Accept", "text/plain"), ("Content-Length", "0")])
    cuts = [1, 2, 4, 5, 9, 10, 14, 16, 17, 30, 44, len(full) - 3, len(full) - 2, len(full) - 1]
    out = [Case(f"partial POST /inc cut at {n}", "partial", [full[:n], 0.2, CLOSE]) for n in cuts]
    out.append(Case("partial request line then half a header", "partial", [b"GET / HTTP/1.1\r\nHo", 0.2, CLOSE]))
    out.append(Case("empty lines only, then close", "partial", [b"\r\n" * 2000, 0.2, CLOSE]))
    out.append(Case("connect and close", "partial", [CLOSE]))
    return out


def _pipelined_cases():
    garbage = {
        "binary": bytes(range(256)),
        "word": b"GARBAGE\r\n\r\n",
        "bare newlines": b"\n\n\n\n",
        "bad method then POST /inc": b"P\x00ST /inc HTTP/1.1\r\nHost: x\r\n\r\n" + req("POST", "/inc", [HOST]),
        "negative CL": req("POST", "/inc", [HOST, ("Content-Length", "-1")]),
        "no Host POST": req("POST", "/inc", []),
        "giant header": req("POST", "/inc", [HOST, ("X-Big", "a" * 40000)]),
        "TLS ClientHello": bytes.fromhex("16030100a5010000a10303") + bytes(32) + b"\x00\x00\x02\x13\x01\x01\x00",
        "h2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "HTTP/0.9": b"GET /inc\r\n",
        "half a request line": b"POST /in",
        "smuggled CL+TE": req("POST", "/inc", [HOST, ("Content-Length", "4"), ("Transfer-Encoding", "chunked")], b"0\r\n\r\n"),
    }
    out = [Case(f"pipelined valid GET / + {name}", "pipelined", [VALID_GET + g], valid_first=1)
           for name, g in garbage.items()]
    # hyper closes after a request it cannot parse: the POST behind it must never run.
    # (Leading empty lines are not garbage: RFC 9112 lets a server skip them.)
    out += [Case(f"pipelined garbage {name} before a POST /inc", "pipelined",
                 [garbage[name] + b"\r\n" + req("POST", "/inc", [HOST])])
            for name in ("binary", "word", "TLS ClientHello", "h2 preface", "negative CL")]
    return out


def _protocol_cases():
    cases = {
        "HTTP/0.9 GET /": b"GET /\r\n",
        "HTTP/0.9 GET /inc": b"GET /inc\r\n",
        "HTTP/2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "HTTP/2 preface + SETTINGS": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000"),
        "HTTP/2.0 request line": req("POST", "/inc", [HOST], version="HTTP/2.0"),
        "HTTP/3.0 request line": req("POST", "/inc", [HOST], version="HTTP/3.0"),
        # (HTTP/1.2 is not hostile: RFC 9112 §2.3 has it served as HTTP/1.1.)
        "HTTP/1.1.1": req("POST", "/inc", [HOST], version="HTTP/1.1.1"),
        "HTTP/9.9": req("POST", "/inc", [HOST], version="HTTP/9.9"),
        "lowercase version": req("POST", "/inc", [HOST], version="http/1.1"),
        "HTTX/1.1": req("POST", "/inc", [HOST], version="HTTX/1.1"),
        "no version": b"POST /inc \r\nHost: x\r\n\r\n",
        "two spaces": b"POST  /inc  HTTP/1.1\r\nHost: x\r\n\r\n",
        "tab separated": b"POST\t/inc\tHTTP/1.1\r\nHost: x\r\n\r\n",
        "trailing junk": b"POST /inc HTTP/1.1 junk\r\nHost: x\r\n\r\n",
        "TLS ClientHello": bytes.fromhex("16030100a5010000a10303") + bytes(32) + b"\x00\x00\x02\x13\x01\x01\x00",
        "SSH banner": b"SSH-2.0-OpenSSH_9.6\r\n",
        "Redis command": b"*1\r\n$8\r\nFLUSHALL\r\n",
        "SMTP": b"HELO evil.test\r\n",
        "NULs": b"\x00" * 4096,
        "all 0xff": b"\xff" * 4096,
    }
    return [Case(f"protocol {name}", "protocol", [data]) for name, data in cases.items()]


def _slow_cases():
    """Slowloris and kin: each sends for SLOW_SPAN seconds at most."""
    def dribble(data, step=SLOW_STEP, span=SLOW_SPAN):
        n = max(1, int(span / step))
        per = max(1, len(data) // n)
        steps = []
        for i in range(0, len(data), per):
            steps += [data[i:i + per], step]
            if len(steps) >= 2 * n:
                break
        return steps

    inc_head = req("POST", "/inc", [HOST, ("Accept", "text/plain"), ("Content-Length", "0")])
    header_lines = [b"X-Slow-%d: v\r\n" % i for i in range(int(SLOW_SPAN / SLOW_STEP))]
    cases = [
        Case("slow POST /inc head, a byte at a time", "slow", dribble(inc_head), closed_within=7.5),
        Case("slow GET / head", "slow", dribble(VALID_GET), closed_within=7.5),
        Case("slow endless headers", "slow",
             [b"POST /inc HTTP/1.1\r\nHost: x\r\n"] + [x for line in header_lines for x in (line, SLOW_STEP)],
             closed_within=7.5),
        Case("slow request line", "slow", dribble(b"POST /" + b"i" * 40), closed_within=7.5),
        Case("slow giant header value", "slow",
             [b"POST /inc HTTP/1.1\r\nHost: x\r\nX-Slow: "] + [x for _ in range(13) for x in (b"a" * 100, SLOW_STEP)],
             closed_within=7.5),
        Case("slow body on POST /inc", "slow",
             [req("POST", "/inc", [HOST, ("Content-Length", "100")])] + [x for _ in range(13) for x in (b"x", SLOW_STEP)],
             closed_within=7.5),
        Case("body never sent on POST /inc", "slow", [req("POST", "/inc", [HOST, ("Content-Length", "10")]), SLOW_SPAN],
             closed_within=7.5),
        Case("connect and send nothing", "slow", [SLOW_SPAN], closed_within=7.5),
        Case("idle keep-alive after a valid GET /", "slow", [VALID_GET, SLOW_SPAN], valid_first=1, closed_within=7.5),
        Case("empty lines forever", "slow", [x for _ in range(13) for x in (b"\r\n", SLOW_STEP)], closed_within=7.5),
        Case("partial request line held", "slow", [b"POST /inc HTT", SLOW_SPAN], closed_within=7.5),
        Case("complete head minus the final CRLF, held", "slow",
             [req("POST", "/inc", [HOST])[:-2], SLOW_SPAN], closed_within=7.5),
    ]
    # More of the same in parallel: a handful of concurrent slowloris senders.
    for i in range(8):
        cases.append(Case(f"slow header dribble #{i}", "slow",
                          dribble(req("POST", "/inc", [HOST, (f"X-Pad-{i}", "p" * 40)])), closed_within=7.5))
    for c in cases:
        c.slow = True
    return cases


def _generated_cases(seed, n):
    """Random method x path x header set; every header set is refused on its own
    (no Host, a bad or repeated Host, a negative length, nothing acceptable, a
    head over 16 KiB), so every combination must be too."""
    rng = random.Random(seed)
    header_sets = [
        [], [("Host", "a b")], [HOST, HOST], [HOST, ("Content-Length", "-5")],
        [HOST, ("Accept", "image/gif")], [HOST, ("X-Big", "a" * 20000)],
    ]
    out = []
    for i in range(n):
        method = rng.choice(METHODS + ["GET", "POST"])
        path = rng.choice(PATHS + ["/", "/inc"])
        headers = rng.choice(header_sets)
        out.append(Case(f"generated #{i} (seed {seed})", "generated", [req(method, path, headers)]))
    return out


def all_cases(seed=7, generated=40):
    return _gateway_rules(_method_cases() + _path_cases() + _target_cases() + _header_cases() + _body_cases()
            + _partial_cases() + _pipelined_cases() + _protocol_cases() + _slow_cases()
            + _generated_cases(seed, generated))
