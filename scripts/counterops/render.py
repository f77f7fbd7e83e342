"""The local stack's configuration, rendered from the same templates a
cluster's deploy renders with Ansible (consul/*.j2, nomad/*.j2, redis/*.j2),
with the settings both modes share (deploy/group_vars/all/settings.yml) and
a single machine's own values: loopback, no TLS, one server, one Sentinel,
the primary on 6380 and the replica on 6381.

The templates may use, besides plain Jinja, the few Ansible filters given
here (bool, hash): a template renders the same in both modes.
"""

import hashlib
import os
from pathlib import Path

import jinja2
import yaml

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "deploy/group_vars/all/settings.yml"
PRIMARY_PORT, REPLICA_PORT = 6380, 6381


def ansible_bool(value):
    return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")


def ansible_hash(value, algorithm="sha1"):
    return hashlib.new(algorithm, str(value).encode()).hexdigest()


def environment():
    # As Ansible's template module: trim_blocks on, every variable defined.
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROOT)), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, keep_trailing_newline=True)
    env.filters.update(bool=ansible_bool, hash=ansible_hash)
    return env


def settings():
    """The settings both modes share (deploy/group_vars/all/settings.yml)."""
    return yaml.safe_load(SETTINGS.read_text())


def local_vars(etc_dir, secrets_dir, alloc_dir):
    secrets = {p.name: p.read_text().strip() for p in Path(secrets_dir).iterdir() if p.is_file()}
    nodes = {str(p): f"127.0.0.1:{p}" for p in (PRIMARY_PORT, REPLICA_PORT)}
    return settings() | {
        "inventory_hostname": "local", "counter_addr": "127.0.0.1", "counter_tls": False, "counter_tls_dir": "",
        "counter_etc_dir": str(etc_dir), "counter_secret": secrets, "counter_is_server": True,
        "counter_server_addrs": ["127.0.0.1"], "counter_primary_addr": "127.0.0.1",
        "counter_primary_port": PRIMARY_PORT, "sentinel_quorum": 1, "consul_redis_nodes": nodes,
        "counter_interface": "lo", "nomad_alloc_dir": str(alloc_dir) if alloc_dir else "",
    }


# (template, file under the local /etc/counter, its own variables)
FILES = [
    ("consul/consul.hcl.j2", "consul.d/consul.hcl", {}),
    ("consul/secrets.hcl.j2", "consul.d/secrets.hcl", {}),
    ("consul/redis.hcl.j2", "consul.d/redis.hcl", {}),
    ("consul/role-watch.env.j2", "redis/role-watch.env", {}),
    ("nomad/nomad.hcl.j2", "nomad.d/nomad.hcl", {}),
    ("nomad/secrets.hcl.j2", "nomad.d/secrets.hcl", {}),
    ("redis/redis.conf.j2", "redis/primary.conf", {"redis_role": "primary", "redis_port": PRIMARY_PORT}),
    ("redis/redis.conf.j2", "redis/replica.conf", {"redis_role": "replica", "redis_port": REPLICA_PORT}),
    ("redis/sentinel.conf.j2", "redis/sentinel.conf", {}),
    ("redis/users.acl.j2", "redis/users.acl", {}),
]


def write_local(etc_dir, secrets_dir, alloc_dir=None):
    """Renders every file into ETC_DIR (0600: several hold secrets), writing
    only those whose content changed, and removes any other file from the
    agents' config directories (they read every file there); returns the
    names of the files changed or removed."""
    env, values = environment(), local_vars(etc_dir, secrets_dir, alloc_dir)
    changed = []
    for d in ("consul.d", "nomad.d"):
        for path in (Path(etc_dir) / d).glob("*"):
            if f"{d}/{path.name}" not in {name for _, name, _ in FILES}:
                path.unlink()
                changed.append(f"{d}/{path.name}")
    for template, name, extra in FILES:
        text = env.get_template(template).render(values | extra)
        path = Path(etc_dir) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file() and not path.is_symlink() and path.read_text() == text:
            continue
        fd = os.open(f"{path}.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(f"{path}.tmp", path)
        changed.append(name)
    return changed
