"""The secrets of a Counter deployment, generated once into one directory
(0700, files 0600) and never touched again: a second run creates nothing,
so the hosts (or the local stack) keep their credentials. Which secrets
exist follows from the definitions that use them: every token file of
acl.toml, a password for every user of redis/users.acl.j2, the management
tokens, the gossip keys and Sentinel's password.

    python -m counterops.secrets DIR HOST...     prints the names it created

The kind comes from the name: *.token a random UUID (Consul and Nomad take a
SecretID in that form), *.key 32 random bytes in base64 (a gossip key, as
`consul keygen` prints), *.password 48 letters and digits.
"""

import base64
import os
import re
import secrets
import string
import sys
import tomllib
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALPHABET = string.ascii_letters + string.digits
FIXED = ["gossip.key", "nomad-gossip.key", "consul-management.token", "nomad-management.token", "sentinel.password"]


def redis_users():
    """The users redis/users.acl.j2 defines (its `user NAME on` lines)."""
    return re.findall(r"^user (\S+) on ", (ROOT / "redis/users.acl.j2").read_text(), re.M)


def names(hosts):
    tokens = tomllib.loads((ROOT / "scripts/counterops/acl.toml").read_text())["consul"]["tokens"]
    out = list(FIXED)
    for name in tokens:
        out += [name.replace("{host}", h) for h in hosts] if "{host}" in name else [name]
    return out + [f"redis-{u}.password" for u in redis_users()]


def value(name):
    if name.endswith(".token"):
        return str(uuid.UUID(bytes=secrets.token_bytes(16), version=4))
    if name.endswith(".key"):
        return base64.b64encode(secrets.token_bytes(32)).decode()
    if name.endswith(".password"):
        return "".join(secrets.choice(ALPHABET) for _ in range(48))
    raise ValueError(f"unknown kind of secret: {name}")


def ensure(directory, hosts):
    """Creates the missing secrets of a deployment of HOSTS; their names."""
    directory = Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    made = []
    for name in names(hosts):
        path = directory / name
        if path.exists() and path.stat().st_size > 0:
            continue
        fd = os.open(f"{path}.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value(name) + "\n")
        os.replace(f"{path}.tmp", path)
        made.append(name)
    return made


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    for name in ensure(sys.argv[1], sys.argv[2:]):
        print(name)


if __name__ == "__main__":
    main()
