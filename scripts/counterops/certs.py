"""Creates the TLS certificates of a Counter cluster that do not exist yet
(or no longer name their host's address, or come from another CA), in
DIR/tls (0700; keys 0600), and prints the name of each file it wrote. A
second run with the same hosts writes nothing.

One CA per role (DIR/tls/ca/ROLE.pem: consul, nomad, redis, gateway,
services) signs
that role's certificates, and every client trusts only the CA of the role it
talks to (DIR/tls/ROLE-ca.pem, the file the hosts and tools get): a leaf of
one role cannot pose as another to any client, even to one that checks no
name (Redis checks none; Consul's fetch of Nomad's keys checks the address).
The gateway's key, the one most exposed, is worth nothing inside the
cluster. The CAs' keys never leave this directory (the hosts get
certificates and their own keys only).

A cluster made before the CAs were per role has DIR/tls/ca.pem, the one CA
that signed everything: while that file exists every ROLE-ca.pem also
trusts it, so hosts that still present its leaves and hosts with new ones
verify each other during the deploy that replaces them. Once that deploy
has run, delete DIR/tls/ca.pem and ca-key.pem and deploy again: the old CA
is trusted nowhere (docs/deploy.md, "Certificates").

Rotation (scripts/deploy rotate-certs, counterops/rotate.py) changes this
directory one step at a time with --rotate, then issues what is missing as
above; between steps every host is restarted with the new files:
  leaves      every leaf is made anew (same CAs)
  stage-ca    new CAs in DIR/tls/ca-next/: trusted everywhere, signing nothing
  promote-ca  ca/ becomes ca-previous/ (still trusted), ca-next/ becomes ca/:
              every leaf is re-issued by the new CAs
  retire-ca   ca-previous/ is deleted: the old CAs are trusted nowhere
Each step may be run again (an interrupted rotation resumes).

  python -m counterops.certs DIR [--rotate STEP] [--gateway-ip ADDR] --servers HOST,... HOST:ADDR ...

Run with Ansible's python (scripts/deploy): it has the cryptography package.

Per host (ECDSA P-256, two years; the CAs ten):
  HOST-consul.pem  Consul agent. Servers carry server.<dc>.consul, which
                   Consul's verify_server_hostname checks, so a client host
                   can never pose as a server; every agent carries
                   client.<dc>.consul, the name the operators' CLI checks
                   (CONSUL_TLS_SERVER_NAME) on whichever host it asks.
  HOST-nomad.pem   Nomad agent: server.global.nomad (servers) and
                   client.global.nomad (every host runs a client), the same
                   rule for verify_server_hostname; the CLI checks
                   client.global.nomad (NOMAD_TLS_SERVER_NAME).
  HOST-redis.pem   Redis and Sentinel: server and client of each other
                   (replication, Sentinel's links), named by IP.
  HOST-gateway.pem Traefik's HTTPS entrypoint; with --gateway-ip, also the
                   floating gateway address any host may hold.
  HOST-web.pem, HOST-web-inc.pem
                   The services' own HTTPS (services CA), named web.counter
                   and web-inc.counter, the names Traefik checks
                   (traefik/services-tls.yml): web's key cannot pose as
                   web-inc.
  HOST-gateway-client.pem
                   Traefik's client certificate to the services (services
                   CA, clientAuth only): what lets it past their /health/*.
  HOST-exporters.pem
                   The node and redis exporters' HTTPS (services CA), named
                   exporters.counter, the name Prometheus checks.
  HOST-metrics-client.pem
                   Prometheus' client certificate (services CA, clientAuth
                   only) to the services' /metrics and the exporters.
Every certificate of Consul, Nomad, Redis and the gateway also names
localhost, 127.0.0.1, HOST and ADDR, so a tool on the host and a peer on the
cluster network verify the same certificate.
cli.pem is a client certificate of the Nomad CA for operators' tools (the
Nomad CLI, the tests' positive controls); it names no server.
cli-services.pem is the operators' client certificate to the services
(services CA): scripts/status reads each instance's /metrics with it.
"""

import datetime
import ipaddress
import os
import shutil
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DATACENTER = os.environ.get("COUNTER_DATACENTER", "dc1")
REGION = "global"
LEAF_DAYS = 730
CA_DAYS = 3650
ROLES = ("consul", "nomad", "redis", "gateway", "services")
# The CAs' directories under DIR/tls: the one that signs, and the two a
# rotation trusts beside it (a staged successor, a retiring predecessor).
SIGNING, STAGED, RETIRING = "ca", "ca-next", "ca-previous"
ROTATE_STEPS = ("leaves", "stage-ca", "promote-ca", "retire-ca")
# The one CA of a cluster made before the CAs were per role.
LEGACY_CA = "ca.pem"
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


def load_or_make_ca(tls, role, generation=SIGNING):
    """The CA of ROLE (cert, key) from TLS/GENERATION/, made when missing."""
    cas = os.path.join(tls, generation)
    os.makedirs(cas, mode=0o700, exist_ok=True)
    cert_path, key_path = os.path.join(cas, f"{role}.pem"), os.path.join(cas, f"{role}-key.pem")
    if os.path.exists(cert_path) and os.path.exists(key_path):
        with open(cert_path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        with open(key_path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
        return cert, key
    key = ec.generate_private_key(ec.SECP256R1())
    # A name unique to this cluster and role: two CAs are never confused.
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Counter"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"Counter {role} CA {os.urandom(4).hex()}"),
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


def write_trust(tls, role, ca_cert):
    """TLS/ROLE-ca.pem: what ROLE's clients trust. The role's CA; a rotation's
    staged or retiring CA of the role; and the one CA of a cluster from
    before the per-role CAs while its file is there."""
    pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    for other in (os.path.join(tls, STAGED, f"{role}.pem"), os.path.join(tls, RETIRING, f"{role}.pem"),
                  os.path.join(tls, LEGACY_CA)):
        if os.path.exists(other):
            with open(other, "rb") as f:
                pem += f.read()
    path = os.path.join(tls, f"{role}-ca.pem")
    if os.path.exists(path):
        with open(path, "rb") as f:
            if f.read() == pem:
                return
    write(path, pem, 0o644)


def current_names(path, issuer):
    """The SANs of an existing certificate ISSUER signed, or None when there
    is none."""
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    if cert.issuer != issuer:
        return None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(n) for n in san.get_values_for_type(x509.DNSName)} | \
           {str(n) for n in san.get_values_for_type(x509.IPAddress)}


def issue(tls, ca, stem, common_name, dns, ips, usages):
    """Writes STEM.pem and STEM-key.pem unless a certificate CA signed with
    exactly these names is already there."""
    ca_cert, ca_key = ca
    cert_path, key_path = os.path.join(tls, stem + ".pem"), os.path.join(tls, stem + "-key.pem")
    wanted = set(dns) | set(ips)
    if current_names(cert_path, ca_cert.subject) == wanted and os.path.exists(key_path):
        return
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


def leaves(tls):
    """The leaf certificates and keys in TLS: every file there but the
    trust files and the single CA of older clusters."""
    keep = {f"{role}-ca.pem" for role in ROLES} | {LEGACY_CA, "ca-key.pem"}
    return [os.path.join(tls, n) for n in os.listdir(tls)
            if n.endswith(".pem") and n not in keep and os.path.isfile(os.path.join(tls, n))]


def rotate(tls, step):
    """One step of a rotation (the module's docstring): changes the CAs'
    directories or drops the leaves; main() then issues what is missing."""
    staged, signing, retiring = (os.path.join(tls, d) for d in (STAGED, SIGNING, RETIRING))
    if step == "leaves":
        for path in leaves(tls):
            os.remove(path)
    elif step == "stage-ca":
        for role in ROLES:
            load_or_make_ca(tls, role, STAGED)
    elif step == "promote-ca":
        if os.path.isdir(staged):  # else promoted already: a resumed rotation
            if os.path.isdir(retiring):
                sys.exit(f"certs: {retiring} is still there: retire it (--rotate retire-ca) before promoting")
            os.replace(signing, retiring)
            os.replace(staged, signing)
            print(f"{SIGNING}/ (promoted; the old CAs in {RETIRING}/)")
    elif step == "retire-ca":
        if os.path.isdir(staged):
            sys.exit(f"certs: {staged} is there: promote it (--rotate promote-ca) before retiring the old CAs")
        if os.path.isdir(retiring):
            shutil.rmtree(retiring)
            print(f"{RETIRING}/ (deleted)")


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
    gateway_ips, servers, step = [], [], None
    while args[:1] in (["--gateway-ip"], ["--servers"], ["--rotate"]):
        if args[0] == "--servers":
            servers = args[1].split(",")
        elif args[0] == "--rotate":
            step = args[1] if len(args) > 1 else ""
            if step not in ROTATE_STEPS:
                sys.exit(f"certs: --rotate wants one of {', '.join(ROTATE_STEPS)}, got {step!r}")
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
    if step:
        rotate(tls, step)
    ca = {role: load_or_make_ca(tls, role) for role in ROLES}
    for role in ROLES:
        write_trust(tls, role, ca[role][0])
    for name, addr, server in hosts:
        local = ["localhost", name]
        ips = ["127.0.0.1", addr]
        consul = ([f"server.{DATACENTER}.consul"] if server else []) + [f"client.{DATACENTER}.consul"]
        nomad = ([f"server.{REGION}.nomad"] if server else []) + [f"client.{REGION}.nomad"]
        issue(tls, ca["consul"], f"{name}-consul", f"{name} consul", consul + local, ips, SERVER_AND_CLIENT)
        issue(tls, ca["nomad"], f"{name}-nomad", f"{name} nomad", nomad + local, ips, SERVER_AND_CLIENT)
        issue(tls, ca["redis"], f"{name}-redis", f"{name} redis", local, ips, SERVER_AND_CLIENT)
        issue(tls, ca["gateway"], f"{name}-gateway", f"{name} gateway", local, ips + gateway_ips,
              [ExtendedKeyUsageOID.SERVER_AUTH])
        for service in ("web", "web-inc"):
            issue(tls, ca["services"], f"{name}-{service}", f"{name} {service}", [f"{service}.counter"], [],
                  [ExtendedKeyUsageOID.SERVER_AUTH])
        issue(tls, ca["services"], f"{name}-gateway-client", f"{name} gateway", ["gateway.counter"], [],
              [ExtendedKeyUsageOID.CLIENT_AUTH])
        issue(tls, ca["services"], f"{name}-exporters", f"{name} exporters", ["exporters.counter"], [],
              [ExtendedKeyUsageOID.SERVER_AUTH])
        issue(tls, ca["services"], f"{name}-metrics-client", f"{name} prometheus", ["prometheus.counter"], [],
              [ExtendedKeyUsageOID.CLIENT_AUTH])
    issue(tls, ca["nomad"], "cli", "operator", [f"cli.{REGION}.nomad"], [], [ExtendedKeyUsageOID.CLIENT_AUTH])
    issue(tls, ca["services"], "cli-services", "operator", ["operator.counter"], [], [ExtendedKeyUsageOID.CLIENT_AUTH])


if __name__ == "__main__":
    main()
