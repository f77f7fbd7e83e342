"""A Counter deployment as the operator tools see it: its hosts, their
addresses and roles, from the deploy's Ansible inventory (read through
`ansible-inventory`, so every inventory format and variable Ansible accepts
works), and where the deploy keeps its secrets on this machine.

  python3 inventory.py INVENTORY json     the whole description, as JSON
  python3 inventory.py INVENTORY state    the state directory (secrets/ in it)
  python3 inventory.py INVENTORY env      export lines for the nomad/consul CLIs
  python3 inventory.py INVENTORY hosts    one line a host: name address
  python3 inventory.py INVENTORY ssh HOST the ssh arguments that reach HOST
"""

import json
import os
import shlex
import subprocess
import sys

CACHE = os.environ.get("COUNTER_CACHE") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "counter")


def ansible_inventory():
    """The ansible-inventory of scripts/install's venv (or one on PATH)."""
    tools = os.path.join(CACHE, "bin", "ansible-inventory")
    return tools if os.access(tools, os.X_OK) else "ansible-inventory"


def load(path):
    """{'hosts': {name: {'addr', 'ssh'}}, 'servers', 'clients', 'primary', 'state', 'gateway_vip'}."""
    try:
        # From /: ansible-inventory would read a group_vars/ next to the
        # current directory as well (deploy/'s, with unrendered templates).
        out = subprocess.run([ansible_inventory(), "-i", os.path.abspath(path), "--list"], capture_output=True,
                             text=True, check=True, cwd="/")
    except FileNotFoundError:
        sys.exit("error: ansible-inventory not found: run scripts/install --only ansible")
    except subprocess.CalledProcessError as err:
        sys.exit(f"error: cannot read the inventory {path}: {err.stderr.strip()}")
    inv = json.loads(out.stdout)
    hostvars = inv.get("_meta", {}).get("hostvars", {})

    def group(name):
        return list(inv.get(name, {}).get("hosts", []))

    hosts = {}
    for name in group("clients"):
        v = hostvars.get(name, {})
        ssh = v.get("ansible_host", name)
        # The ssh command line Ansible would use for this host (its key, its
        # known_hosts), for the tools that run a command on a host.
        args = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]
        if v.get("ansible_ssh_private_key_file"):
            args += ["-i", os.path.expanduser(v["ansible_ssh_private_key_file"])]
        args += shlex.split(v.get("ansible_ssh_common_args", ""))
        args.append(f"{v.get('ansible_user', 'root')}@{ssh}")
        addr = v.get("counter_addr", ssh)
        if "{{" in str(addr):  # a template only Ansible renders: the deploy's default
            addr = ssh
        hosts[name] = {"addr": addr, "ssh": ssh, "ssh_args": args}
    state = vip = None
    for v in hostvars.values():
        state = state or v.get("counter_state_dir")
        vip = vip or v.get("counter_gateway_vip")
    if not state:
        stem = os.path.splitext(os.path.basename(path))[0]
        state = os.path.join(CACHE, "deploy", stem)
    return {"hosts": hosts, "servers": group("servers"), "clients": group("clients"),
            "primary": (group("redis_primary") or [None])[0], "state": state,
            # The floating gateway address (deploy/roles/gateway_vip), if any.
            "gateway_vip": vip or None}


def env_lines(d):
    """Shell lines for the CLIs: the first server's APIs and the management
    tokens (read from their files when the lines run; never printed)."""
    server = d["hosts"][d["servers"][0]]["addr"]
    secrets = os.path.join(d["state"], "secrets")
    return "\n".join([
        f'export PATH="{CACHE}/bin:$PATH"',
        # HTTPS, verified against the cluster's CA; the client certificate
        # (cli.pem) for the RPC-level tools that want one.
        f"export NOMAD_ADDR=https://{server}:4646 CONSUL_HTTP_ADDR=https://{server}:8501",
        f"export NOMAD_CACERT={secrets}/tls/ca.pem CONSUL_CACERT={secrets}/tls/ca.pem",
        f"export NOMAD_CLIENT_CERT={secrets}/tls/cli.pem NOMAD_CLIENT_KEY={secrets}/tls/cli-key.pem",
        f'export NOMAD_TOKEN="$(cat {secrets}/nomad-management.token)"',
        f"export CONSUL_HTTP_TOKEN_FILE={secrets}/consul-management.token",
    ])


def main():
    if len(sys.argv) < 3 or sys.argv[2] not in ("json", "state", "env", "hosts", "ssh"):
        sys.exit(__doc__)
    d = load(sys.argv[1])
    if sys.argv[2] == "hosts":
        for name in d["clients"]:
            print(name, d["hosts"][name]["addr"])
    elif sys.argv[2] == "ssh":
        if len(sys.argv) != 4 or sys.argv[3] not in d["hosts"]:
            sys.exit(f"error: no host {sys.argv[3:]} in the inventory")
        print("\n".join(d["hosts"][sys.argv[3]]["ssh_args"]))
    elif sys.argv[2] == "json":
        print(json.dumps(d))
    elif sys.argv[2] == "state":
        print(d["state"])
    else:
        print(env_lines(d))


if __name__ == "__main__":
    main()
