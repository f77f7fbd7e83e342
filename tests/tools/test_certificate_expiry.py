"""prometheus/certificate-expiry.sh, which the exporters job runs for the
node exporter's textfile collector: one sample per certificate file of the
directory (keys left out), its notAfter as Unix time as openssl reads it,
the earliest of a file holding several; a machine without the directory
gets the header alone."""

import calendar
import re
import subprocess
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "prometheus/certificate-expiry.sh"


def certificate(directory, name, days):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(directory / f"{name}-key.pem"), "-out", str(directory / f"{name}.pem"),
                    "-days", str(days), "-subj", f"/CN={name}"], check=True, capture_output=True)
    end = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", str(directory / f"{name}.pem")],
                         capture_output=True, text=True, check=True).stdout.strip().removeprefix("notAfter=")
    return calendar.timegm(time.strptime(end, "%b %d %H:%M:%S %Y GMT"))  # openssl prints GMT


def samples(tls, out):
    subprocess.run(["sh", str(SCRIPT), str(tls), str(out)], check=True)
    text = out.read_text()
    assert text.startswith("# HELP counter_certificate_not_after_seconds"), text
    return {m[0]: int(m[1]) for m in re.findall(r'^counter_certificate_not_after_seconds\{file="([^"]+)"\} (\d+)$',
                                                  text, re.M)}


def test_every_certificate_file_once_with_its_expiry_and_the_earliest_of_several(tmp_path):
    tls = tmp_path / "tls"
    tls.mkdir()
    leaf, ca = certificate(tls, "web", 40), certificate(tls, "services-ca", 3650)
    (tls / "redis-ca.pem").write_text((tls / "services-ca.pem").read_text() + (tls / "web.pem").read_text())
    (tls / "notes.pem").write_text("not a certificate\n")
    got = samples(tls, tmp_path / "textfile" / "certificates.prom")
    assert got == {"web.pem": leaf, "services-ca.pem": ca, "redis-ca.pem": leaf}, got
    assert ca - leaf > 3000 * 86400


def test_a_machine_without_certificates_gets_the_header_alone(tmp_path):
    assert samples(tmp_path / "missing", tmp_path / "certificates.prom") == {}
