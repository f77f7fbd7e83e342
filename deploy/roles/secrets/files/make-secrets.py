#!/usr/bin/env python3
"""Creates the secrets of a Counter cluster that do not exist yet, in one
directory (0700; files 0600), and prints the name of each one it created.
An existing file is never touched: a second run creates nothing.

  make-secrets.py DIR NAME...

The kind comes from the name: *.token a random UUID (Consul and Nomad take
a SecretID in that form), *.key 32 random bytes in base64 (what `consul
keygen` prints: a gossip key), *.password 48 random letters and digits,
*.header the HTTP header of the token of the same name
(consul-management.header: X-Consul-Token, nomad-*: X-Nomad-Token).
"""

import base64
import os
import secrets
import string
import sys
import uuid

ALPHABET = string.ascii_letters + string.digits


def value(directory, name):
    if name.endswith(".token"):
        return str(uuid.UUID(bytes=secrets.token_bytes(16), version=4))
    if name.endswith(".key"):
        return base64.b64encode(secrets.token_bytes(32)).decode()
    if name.endswith(".password"):
        return "".join(secrets.choice(ALPHABET) for _ in range(48))
    if name.endswith(".header"):
        stem = name[: -len(".header")]
        header = "X-Nomad-Token" if stem.startswith("nomad") else "X-Consul-Token"
        with open(os.path.join(directory, stem + ".token")) as f:
            return f"{header}: {f.read().strip()}"
    sys.exit(f"make-secrets: unknown kind of secret: {name}")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    directory, names = sys.argv[1], sys.argv[2:]
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    # Headers last: they are made from their tokens.
    for name in sorted(names, key=lambda n: n.endswith(".header")):
        path = os.path.join(directory, name)
        if os.path.exists(path) and os.path.getsize(path) > 0:
            continue
        fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value(directory, name) + "\n")
        os.replace(path + ".tmp", path)
        print(name)


if __name__ == "__main__":
    main()
