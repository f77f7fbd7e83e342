"""A minimal Redis client (RESP2 over TCP or TLS, one connection, no pooling)
for the tools: the role watch's looks, scripts/status, the chaos runner's
counts and the tests. Standard library only (the role watch runs it on every
host). Passwords are given to the constructor, never put on a command line.
"""

import socket
import ssl


class RedisError(Exception):
    """A Redis error reply (-ERR, -NOAUTH, -NOPERM, ...)."""


class Redis:
    def __init__(self, host, port, password=None, user=None, ca=None, timeout=2.0):
        self.host, self.port, self.timeout = host, int(port), timeout
        self.user, self.password = user, password
        # Verified against the Redis CA by address, as Redis' own clients do.
        self.tls = ssl.create_default_context(cafile=ca) if ca else None
        self.sock = self.reader = None

    def __repr__(self):
        return f"{self.host}:{self.port}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def connect(self):
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        try:
            if self.tls:
                sock = self.tls.wrap_socket(sock, server_hostname=self.host)
            sock.settimeout(self.timeout)
            self.sock, self.reader = sock, sock.makefile("rb")
            if self.password:
                self.call("AUTH", *([self.user] if self.user else []), self.password)
        except BaseException:
            self.close()
            sock.close()
            raise

    def close(self):
        if self.sock:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = self.reader = None

    def call(self, *args):
        """Sends one command and returns its reply; connects when needed. A
        connection error closes the connection (the next call reconnects)."""
        if self.sock is None:
            self.connect()
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        try:
            self.sock.sendall(b"".join(parts))
            return self._reply()
        except OSError:
            self.close()
            raise

    def _reply(self):
        line = self.reader.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection closed by the server")
        kind, body = line[:1], line[1:-2]
        if kind == b"+":
            return body.decode()
        if kind == b"-":
            raise RedisError(body.decode())
        if kind == b":":
            return int(body)
        if kind == b"$":
            size = int(body)
            if size < 0:
                return None
            data = self.reader.read(size + 2)
            if len(data) != size + 2:
                raise ConnectionError("connection closed by the server")
            return data[:-2].decode()
        if kind == b"*":
            size = int(body)
            return None if size < 0 else [self._reply() for _ in range(size)]
        raise ConnectionError(f"unexpected reply {line[:40]!r}")

    def info(self, section="replication"):
        """INFO SECTION as a dict of its key:value lines."""
        return parse_info(self.call("INFO", section))


def parse_info(text):
    """`INFO` output as a dict of its key:value lines (headers skipped)."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and not line.startswith("#"):
            fields[key.strip()] = value.strip()
    return fields
