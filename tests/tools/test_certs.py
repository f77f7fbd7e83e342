"""counterops.certs: one CA per role, so a leaf of one role never verifies
as another's; what a second run rewrites; and the move off the single CA
of older clusters. Run with the deploy's Python (it has cryptography, as
scripts/deploy runs it) and checked with openssl."""

import os
import subprocess
from pathlib import Path

from counterops import target

REPO = Path(__file__).resolve().parents[2]
# The deploy's interpreter: scripts/test installs Ansible before this suite.
DEPLOY_PYTHON = Path(os.path.realpath(target.BIN / "ansible-playbook")).parent / "python"
HOSTS = ["--servers", "m1", "m1:198.18.0.11", "m2:198.18.0.12"]


def make(directory):
    out = subprocess.run([str(DEPLOY_PYTHON), "-m", "counterops.certs", str(directory), *HOSTS],
                         capture_output=True, text=True, check=True, env=dict(os.environ, PYTHONPATH=str(REPO / "scripts")))
    return set(out.stdout.split())


def verifies(ca, leaf):
    return subprocess.run(["openssl", "verify", "-CAfile", str(ca), str(leaf)], capture_output=True).returncode == 0


def names(leaf):
    return subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(leaf)],
                          capture_output=True, text=True, check=True).stdout


def test_each_role_trusts_its_own_leaves_only(tmp_path):
    make(tmp_path)
    tls = tmp_path / "tls"
    leaves = {"consul": ["consul"], "nomad": ["nomad"], "redis": ["redis"], "gateway": ["gateway"],
              "services": ["web", "web-inc", "gateway-client", "exporters", "metrics-client"]}
    for role in leaves:
        for other, stems in leaves.items():
            for stem in stems:
                assert verifies(tls / f"{role}-ca.pem", tls / f"m2-{stem}.pem") == (role == other), (role, stem)
    # Traefik checks each service's name: web's key cannot pose as web-inc.
    assert "DNS:web.counter" in names(tls / "m2-web.pem") and "web-inc" not in names(tls / "m2-web.pem")
    assert "DNS:web-inc.counter" in names(tls / "m2-web-inc.pem")
    # Prometheus checks the exporters' name; its own certificate serves nothing.
    assert "DNS:exporters.counter" in names(tls / "m2-exporters.pem")
    usage = subprocess.run(["openssl", "x509", "-noout", "-ext", "extendedKeyUsage", "-in", str(tls / "m2-metrics-client.pem")],
                           capture_output=True, text=True, check=True).stdout
    assert "TLS Web Client Authentication" in usage and "Server" not in usage, usage
    assert verifies(tls / "nomad-ca.pem", tls / "cli.pem") and not verifies(tls / "consul-ca.pem", tls / "cli.pem")
    # The names the CLIs check: every agent's, a server's only on servers.
    assert "DNS:client.dc1.consul" in names(tls / "m1-consul.pem") and "DNS:server.dc1.consul" in names(tls / "m1-consul.pem")
    assert "DNS:client.dc1.consul" in names(tls / "m2-consul.pem") and "server.dc1.consul" not in names(tls / "m2-consul.pem")
    assert "DNS:client.global.nomad" in names(tls / "m2-nomad.pem") and "server.global.nomad" not in names(tls / "m2-nomad.pem")
    assert (tls / "ca" / "gateway-key.pem").stat().st_mode & 0o777 == 0o600


def test_a_second_run_writes_nothing(tmp_path):
    make(tmp_path)
    assert make(tmp_path) == set()


def test_a_cluster_of_the_single_ca_is_moved_with_both_trusted_meanwhile(tmp_path):
    """Leaves of the old CA are replaced, and each role trusts it beside its
    own until its file is deleted: hosts not yet updated still verify."""
    tls = tmp_path / "tls"
    tls.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(tls / "ca-key.pem"), "-out", str(tls / "ca.pem"), "-subj", "/CN=old cluster CA",
                    "-days", "10"], check=True, capture_output=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(tls / "m1-redis-key.pem"), "-out", str(tls / "old-leaf.pem"), "-subj", "/CN=m1 redis",
                    "-CA", str(tls / "ca.pem"), "-CAkey", str(tls / "ca-key.pem"), "-days", "10"],
                   check=True, capture_output=True)
    (tls / "m1-redis.pem").write_bytes((tls / "old-leaf.pem").read_bytes())
    written = make(tmp_path)
    assert {"m1-redis.pem", "m1-redis-key.pem", "redis-ca.pem"} <= written
    assert not verifies(tls / "ca.pem", tls / "m1-redis.pem") and verifies(tls / "redis-ca.pem", tls / "m1-redis.pem")
    assert verifies(tls / "redis-ca.pem", tls / "old-leaf.pem"), "an old leaf is trusted during the move"
    (tls / "ca.pem").unlink()
    assert make(tmp_path) == {"consul-ca.pem", "nomad-ca.pem", "redis-ca.pem", "gateway-ca.pem", "services-ca.pem"}
    assert not verifies(tls / "redis-ca.pem", tls / "old-leaf.pem"), "the old CA is trusted after its file is gone"


def rotate(directory, step):
    out = subprocess.run([str(DEPLOY_PYTHON), "-m", "counterops.certs", str(directory), "--rotate", step, *HOSTS],
                         capture_output=True, text=True, check=True, env=dict(os.environ, PYTHONPATH=str(REPO / "scripts")))
    return set(out.stdout.split())


def test_renewing_the_leaves_writes_every_leaf_anew_from_the_same_cas(tmp_path):
    make(tmp_path)
    tls = tmp_path / "tls"
    before = {p.name: p.read_bytes() for p in tls.glob("*.pem")}
    written = rotate(tmp_path, "leaves")
    leaves = {n for n in before if not n.endswith("-ca.pem")}
    assert written == leaves and len(leaves) == 2 * (2 * 9 + 2)  # two hosts of 9 leaves, cli, cli-services
    assert all((tls / n).read_bytes() != before[n] for n in leaves)
    assert all((tls / n).read_bytes() == before[n] for n in before if n.endswith("-ca.pem"))
    assert verifies(tls / "redis-ca.pem", tls / "m1-redis.pem")


def test_a_ca_rotation_trusts_both_cas_until_every_leaf_is_the_new_ones(tmp_path):
    """stage-ca: the new CAs trusted, the old still signing (hosts not yet
    restarted verify those that are); promote-ca: every leaf from the new,
    the old still trusted; retire-ca: the old trusted nowhere."""
    make(tmp_path)
    tls = tmp_path / "tls"
    (tmp_path / "old.pem").write_bytes((tls / "ca" / "redis.pem").read_bytes())
    old_leaf = (tls / "m1-redis.pem").read_bytes()
    (tmp_path / "old-leaf.pem").write_bytes(old_leaf)

    assert rotate(tmp_path, "stage-ca") >= {"redis-ca.pem", "consul-ca.pem"}
    assert (tls / "m1-redis.pem").read_bytes() == old_leaf, "staging re-issued a leaf"
    (tmp_path / "next.pem").write_bytes((tls / "ca-next" / "redis.pem").read_bytes())
    assert verifies(tls / "redis-ca.pem", tmp_path / "old-leaf.pem")
    assert rotate(tmp_path, "stage-ca") == set(), "staging again changed something"

    written = rotate(tmp_path, "promote-ca")
    assert {"m1-redis.pem", "m2-web.pem", "cli.pem"} <= written
    assert (tls / "ca" / "redis.pem").read_bytes() == (tmp_path / "next.pem").read_bytes()
    assert verifies(tmp_path / "next.pem", tls / "m1-redis.pem")
    assert not verifies(tmp_path / "old.pem", tls / "m1-redis.pem")
    assert verifies(tls / "redis-ca.pem", tmp_path / "old-leaf.pem"), "the old CA is no longer trusted mid-rotation"
    assert rotate(tmp_path, "promote-ca") == set(), "promoting again changed something"

    rotate(tmp_path, "retire-ca")
    assert not (tls / "ca-previous").exists()
    assert not verifies(tls / "redis-ca.pem", tmp_path / "old-leaf.pem")
    assert verifies(tls / "redis-ca.pem", tls / "m1-redis.pem")


def test_an_unknown_rotation_step_is_named(tmp_path):
    p = subprocess.run([str(DEPLOY_PYTHON), "-m", "counterops.certs", str(tmp_path), "--rotate", "everything", *HOSTS],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO / "scripts")))
    assert p.returncode != 0 and "--rotate wants one of leaves, stage-ca, promote-ca, retire-ca" in p.stderr
