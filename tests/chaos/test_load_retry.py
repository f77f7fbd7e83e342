"""The load's retry rule against a real socket server: a GET on a kept
connection that the server reset is retried once on a new connection and
counted; a POST is never retried; a fresh connection's failure is an error."""

import socket
import struct
import threading

import pytest

from counterops.chaos.load import Results, exchange

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n7"


class ResettingServer:
    """Answers the first request of each connection, then resets it (SO_LINGER
    0) at the next request: a kept connection that died between requests.
    With reset_fresh, also resets a new connection's first request."""

    def __init__(self, reset_fresh=False):
        self.reset_fresh = reset_fresh
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.connections = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn):
        with conn:
            requests = 0
            while conn.recv(65536):
                requests += 1
                if requests == 1 and not self.reset_fresh:
                    conn.sendall(OK)
                    continue
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return

    def close(self):
        self.sock.close()


@pytest.fixture
def server():
    srv = ResettingServer()
    yield srv
    srv.close()


def test_a_get_on_a_reset_kept_connection_is_retried_once_and_counted(server):
    conns, results = {}, Results()
    assert exchange(conns, server.url, "GET", "/", results) == (True, b"7", "GET 200")
    # The kept connection is reset at its second request: a new one answers.
    assert exchange(conns, server.url, "GET", "/", results) == (True, b"7", "GET 200")
    assert results.get_retried == 1
    assert server.connections == 2


def test_a_post_on_a_reset_kept_connection_is_an_error_not_a_retry(server):
    conns, results = {}, Results()
    assert exchange(conns, server.url, "POST", "/inc", results)[0]
    ok, _, kind = exchange(conns, server.url, "POST", "/inc", results)
    assert not ok and kind.startswith("POST ") and kind != "POST 200"
    assert results.get_retried == 0
    assert server.connections == 1


def test_a_fresh_connection_that_fails_is_an_error():
    srv = ResettingServer(reset_fresh=True)
    try:
        conns, results = {}, Results()
        ok, _, kind = exchange(conns, srv.url, "GET", "/", results)
        assert not ok and kind in ("GET ConnectionResetError", "GET RemoteDisconnected")
        assert results.get_retried == 0
        assert srv.connections == 1
    finally:
        srv.close()
