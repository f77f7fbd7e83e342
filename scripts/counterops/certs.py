"""Creates the TLS certificates of a Counter cluster that do not exist yet
(or no longer name their host's address), in DIR/tls (0700; keys 0600), and
prints the name of each file it wrote. One CA per cluster signs everything;
its key never leaves this directory (the hosts get certificates and their
own keys only). A second run with the same hosts writes nothing.

  python -m counterops.certs DIR [--gateway-ip ADDR] --servers HOST,... HOST:ADDR ...

Run with Ansible's python (scripts/deploy): it has the cryptography package.

Per host (ECDSA P-256, two years; the CA ten):
  HOST-consul.pem  Consul agent. Servers carry server.<dc>.consul, which
                   Consul's verify_server_hostname checks; clients carry
                   client.<dc>.consul, so a client host can never pose as a
                   server.
  HOST-nomad.pem   Nomad agent: server.global.nomad (servers) and
                   client.global.nomad (every host runs a client), the same
                   rule for verify_server_hostname.
  HOST-redis.pem   Redis and Sentinel: server and client of each other
                   (replication, Sentinel's links), named by IP.
  HOST-gateway.pem Traefik's HTTPS entrypoint; with --gateway-ip, also the
                   floating gateway address any host may hold.
Every certificate also names localhost, 127.0.0.1, HOST and ADDR, so a tool
on the host and a peer on the cluster network verify the same certificate.
cli.pem is a client certificate for operators' tools (Nomad and Consul CLI,
the tests' positive controls); it names no server.
"""

import datetime
import ipaddress
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DATACENTER = os.environ.get("COUNTER_DATACENTER", "dc1")
REGION = "global"
LEAF_DAYS = 730
CA_DAYS = 3650
SERVER_AND_CLIENT = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def write(path, data, mode):
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)
    print(os.path.basename(path))


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_or_make_ca(tls):
    cert_path, key_path = os.path.join(tls, "ca.pem"), os.path.join(tls, "ca-key.pem")
    if os.path.exists(cert_path) and os.path.exists(key_path):
        with open(cert_path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        with open(key_path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
        return cert, key
    key = ec.generate_private_key(ec.SECP256R1())
    # A name unique to this cluster: two clusters' CAs are never confused.
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Counter"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"Counter cluster CA {os.urandom(4).hex()}"),
    ])
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now() - datetime.timedelta(minutes=5))
            .not_valid_after(now() + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    write(key_path, key_pem(key), 0o600)
    write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert, key


def current_names(path):
    """The SANs of an existing certificate, or None when there is none."""
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(n) for n in san.get_values_for_type(x509.DNSName)} | \
           {str(n) for n in san.get_values_for_type(x509.IPAddress)}


def issue(tls, ca, stem, common_name, dns, ips, usages):
    """Writes STEM.pem and STEM-key.pem unless a certificate with exactly
    these names is already there."""
    cert_path, key_path = os.path.join(tls, stem + ".pem"), os.path.join(tls, stem + "-key.pem")
    wanted = set(dns) | set(ips)
    if current_names(cert_path) == wanted and os.path.exists(key_path):
        return
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now() - datetime.timedelta(minutes=5))
            .not_valid_after(now() + datetime.timedelta(days=LEAF_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False,
                                         crl_sign=False, content_commitment=False, data_encipherment=False,
                                         key_agreement=True, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    write(key_path, key_pem(key), 0o600)
    write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def parse_host(spec, servers):
    try:
        name, addr = spec.split(":")
        ipaddress.ip_address(addr)
    except ValueError:
        sys.exit(f"certs: bad host {spec!r}: want HOST:ADDR with ADDR an IP address")
    return name, addr, name in servers


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    args = sys.argv[2:]
    gateway_ips, servers = [], []
    while args[:1] in (["--gateway-ip"], ["--servers"]):
        if args[0] == "--servers":
            servers = args[1].split(",")
        else:
            try:
                gateway_ips = [str(ipaddress.ip_address(args[1]))]
            except (IndexError, ValueError):
                sys.exit(f"certs: --gateway-ip wants an IP address, got {args[1:2]}")
        args = args[2:]
    directory, hosts = sys.argv[1], [parse_host(s, servers) for s in args]
    tls = os.path.join(directory, "tls")
    os.makedirs(tls, mode=0o700, exist_ok=True)
    os.chmod(tls, 0o700)
    ca = load_or_make_ca(tls)
    for name, addr, server in hosts:
        local = ["localhost", name]
        ips = ["127.0.0.1", addr]
        consul = [f"server.{DATACENTER}.consul"] if server else [f"client.{DATACENTER}.consul"]
        nomad = ([f"server.{REGION}.nomad"] if server else []) + [f"client.{REGION}.nomad"]
        issue(tls, ca, f"{name}-consul", f"{name} consul", consul + local, ips, SERVER_AND_CLIENT)
        issue(tls, ca, f"{name}-nomad", f"{name} nomad", nomad + local, ips, SERVER_AND_CLIENT)
        issue(tls, ca, f"{name}-redis", f"{name} redis", local, ips, SERVER_AND_CLIENT)
        issue(tls, ca, f"{name}-gateway", f"{name} gateway", local, ips + gateway_ips,
              [ExtendedKeyUsageOID.SERVER_AUTH])
    issue(tls, ca, "cli", "operator", [f"cli.{REGION}.nomad", f"cli.{DATACENTER}.consul"], [],
          [ExtendedKeyUsageOID.CLIENT_AUTH])


if __name__ == "__main__":
    main()
