"""counterops.expiry: days left of a served certificate, and the warning
under 30 days, against a real TLS listener with certificates made here."""

import socket
import ssl
import subprocess
import threading
from pathlib import Path

from counterops import expiry, target


def make_pki(d, leaf_days):
    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("req", "-x509", *key, "-days", "3650", "-subj", "/CN=test CA", "-keyout", "ca.key", "-out", "ca.pem")
    openssl("req", *key, "-subj", "/CN=leaf", "-keyout", "leaf.key", "-out", "leaf.csr")
    openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "1",
            "-days", str(leaf_days), "-extfile", "san.ext", "-out", "leaf.pem")


def tls_listener(d):
    """A TLS server on 127.0.0.1 serving leaf.pem; its port."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(d / "leaf.pem", d / "leaf.key")
    server = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            conn, _ = server.accept()
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1]


def test_days_left_counts_whole_days():
    not_after = "Jan  2 00:00:00 2030 GMT"
    assert expiry.days_left(not_after, now=ssl.cert_time_to_seconds(not_after) - 10 * 86400 - 5) == 10


def test_a_certificate_under_30_days_is_flagged_and_one_of_another_ca_is_unreadable(tmp_path, monkeypatch):
    make_pki(tmp_path, leaf_days=10)
    port = tls_listener(tmp_path)
    monkeypatch.setattr(expiry, "ENDPOINTS", [("probe", port, False, "gateway")])
    monkeypatch.setattr(expiry, "ROLES", ("gateway",))
    cluster = target.Target("cluster", {"m1": target.Host("m1", "127.0.0.1")}, ["m1"], tmp_path, tmp_path)
    monkeypatch.setattr(target.Target, "ca", lambda self, role: str(tmp_path / "ca.pem"))
    rows, healthy = expiry.rows(cluster)
    assert not healthy
    ca_row, probe = rows
    assert ca_row[1] == "gateway CA" and ca_row[4] >= 3640 and ca_row[5] == ""
    assert probe[:3] == ["m1", "probe", f"127.0.0.1:{port}"] and probe[4] in (9, 10)
    assert probe[5] == "under 30 days: scripts/deploy rotate-certs"
    other = tmp_path / "other"
    other.mkdir()
    make_pki(other, leaf_days=700)
    monkeypatch.setattr(target.Target, "ca", lambda self, role: str(other / "ca.pem"))
    rows, healthy = expiry.rows(cluster)
    assert not healthy and rows[1][5].startswith("unreadable") and "CERTIFICATE_VERIFY_FAILED" in rows[1][5]


def test_a_long_lived_certificate_is_fine(tmp_path, monkeypatch):
    make_pki(tmp_path, leaf_days=700)
    port = tls_listener(tmp_path)
    monkeypatch.setattr(expiry, "ENDPOINTS", [("probe", port, False, "gateway")])
    monkeypatch.setattr(expiry, "ROLES", ("gateway",))
    monkeypatch.setattr(target.Target, "ca", lambda self, role: str(tmp_path / "ca.pem"))
    cluster = target.Target("cluster", {"m1": target.Host("m1", "127.0.0.1")}, ["m1"], Path(tmp_path), tmp_path)
    rows, healthy = expiry.rows(cluster)
    assert healthy and rows[1][4] in (698, 699, 700) and rows[1][5] == ""
