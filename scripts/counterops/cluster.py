"""scripts/cluster: test machines for Counter on this one host (machines.py
says what they are), written as an Ansible inventory and deployed with
scripts/deploy over SSH, exactly as real hosts are. Needs root.

    up [--machines N]     make N machines (default 3; more than run adds machines) and deploy onto them
    remove MACHINE        take a machine out under load (scripts/deploy remove-host), then remove it
    reboot MACHINE [--hard]  a clean reboot, or a power cut and a boot
    start MACHINE         boot a machine that is off (its state kept)
    status                machines, then scripts/status of the cluster
    exec MACHINE CMD...   run a command inside a machine (faults, debugging)
    env                   export lines for the nomad/consul CLIs
    down                  remove machines, namespaces, veths, bridge, secrets
"""

import argparse
import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

from . import machines as mc
from .machines import log
from .target import TEST_CLUSTER, TEST_INVENTORY

ROOT = Path(__file__).resolve().parents[2]


def write_inventory(names):
    """The machines as an Ansible inventory: the same kind of file an operator
    writes for real hosts (deploy/inventory.example.yml); the first three are
    the servers, the first starts as the Redis primary."""
    lines = ["# The test machines of scripts/cluster (written by it; do not edit). The deploy",
             "# reaches them over SSH with this cluster's key, checking their host keys.",
             "all:", "  vars:", "    ansible_user: root",
             f"    ansible_ssh_private_key_file: {mc.SSH_DIR / 'id_ed25519'}",
             f"    ansible_ssh_common_args: -o UserKnownHostsFile={mc.SSH_DIR / 'known_hosts'} -o IdentitiesOnly=yes",
             "    # The deploy keeps this cluster's secrets here (secrets/, 0700).",
             f"    counter_state_dir: {TEST_CLUSTER}",
             "    # One gateway address for clients, held by one machine at a time (keepalived).",
             f"    counter_gateway_vip: {mc.GATEWAY_VIP}",
             "    # Far above the chaos loads' ~700 increments a second from this one client",
             "    # (docs/deploy.md, 'Limits at the gateway'); test_2_security sets 100.",
             "    counter_inc_limit_per_client: 20000",
             "  children:", "    servers:", "      hosts:", *[f"        {m}:" for m in names[:3]],
             "    clients:", "      hosts:", *[f"        {m}:\n          ansible_host: {mc.addr(m)}" for m in names],
             "    redis_primary:", "      hosts:", f"        {names[0]}:"]
    TEST_INVENTORY.with_suffix(".tmp").write_text("\n".join(lines) + "\n")
    TEST_INVENTORY.with_suffix(".tmp").rename(TEST_INVENTORY)


def need_root():
    if os.geteuid() != 0:
        sys.exit("error: needs root (network namespaces, mounts, systemd-nspawn)")


def need_tools():
    for cmd in ("systemd-nspawn", "ip", "nsenter", "mount", "ssh", "ssh-keygen", "debootstrap"):
        if not shutil.which(cmd):
            sys.exit(f"error: '{cmd}' is required but not found: run scripts/install --for cluster")


def lock():
    """One scripts/cluster changing the cluster at a time."""
    TEST_CLUSTER.mkdir(parents=True, exist_ok=True)
    f = open(TEST_CLUSTER / ".lock", "w")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.exit(f"error: another scripts/cluster up/remove/down is running (lock: {TEST_CLUSTER / '.lock'})")
    return f


def deploy(*args):
    subprocess.run([str(ROOT / "scripts/deploy"), "-i", str(TEST_INVENTORY), *args], check=True)


def up(n):
    if not 3 <= n <= 20:
        sys.exit(f"error: --machines: expected 3 to 20, got {n}")
    have = mc.machines()
    if len(have) > n:
        sys.exit(f"error: the cluster has {len(have)} machines: 'scripts/cluster remove MACHINE' takes one out")
    if not have:
        # A new cluster gets new secrets and keys, even if a broken teardown left old ones.
        shutil.rmtree(TEST_CLUSTER / "secrets", ignore_errors=True)
        shutil.rmtree(mc.SSH_DIR, ignore_errors=True)
    lower = mc.rootfs()
    mc.net_up()
    mc.ssh_key()
    names = [f"m{i}" for i in range(1, n + 1)]
    for m in names:
        mc.boot(m, lower)
    for m in names:
        mc.wait_booted(m)
    write_inventory(names)
    log(f"machines {' '.join(names)} up; deploying with scripts/deploy -i {TEST_INVENTORY}")
    deploy()
    print(f"""
gateway: http://{mc.GATEWAY_VIP}:8080   (the floating address, held by one machine;
         every machine's own address on :8080 is a gateway too)
inventory: {TEST_INVENTORY}

Try:
  curl -s http://{mc.GATEWAY_VIP}:8080/inc
  eval "$(scripts/cluster env)"     # PATH, addresses, NOMAD_TOKEN, CONSUL_HTTP_TOKEN_FILE
  consul members; nomad node status; nomad job status web
  scripts/status --cluster; scripts/logs --cluster -f
  scripts/deploy -i {TEST_INVENTORY}      # again: changes nothing
  scripts/cluster down""")


def known(m):
    if not (mc.MACHINES / m).is_dir():
        sys.exit(f"error: no machine {m} (scripts/cluster status)")


def remove(m):
    """remove-host under load, the machine gone, the inventory without it, and
    the host before it in the ring deployed again (it registered m's Redis)."""
    known(m)
    names = mc.machines()
    subprocess.run([str(ROOT / "scripts/deploy"), "remove-host", "-i", str(TEST_INVENTORY), m], check=True)
    mc.remove(m)
    rest = mc.machines()
    write_inventory(rest)
    log(f"{m} removed; inventory: {' '.join(rest)}; deploying to {names[names.index(m) - 1]} again")
    deploy("--", "--limit", f"localhost,{names[names.index(m) - 1]}")


def reboot(m, hard):
    """A clean reboot (systemctl reboot inside: its units stop in order), or a
    power cut (poweroff -ff inside, then booted as `start` boots it)."""
    known(m)
    if not mc.supervisor_pid(m):
        sys.exit(f"error: {m} is off: scripts/cluster start {m}")
    if hard:
        log(f"{m}: power cut")
        mc.in_machine(m, "systemctl", "poweroff", "-ff", check=False)
        mc.wait_off(m)
        start(m)
        return
    log(f"{m}: rebooting")
    booted = mc.leader_pid(m)
    mc.in_machine(m, "systemctl", "reboot", check=False)
    if not mc.wait(f"{m} to go down", lambda: mc.leader_pid(m) != booted, 90):
        sys.exit(f"error: {m} did not reboot")
    mc.wait_booted(m)


def start(m):
    known(m)
    mc.start(m)


def status():
    names = mc.machines()
    if not names:
        print("no machines (scripts/cluster up)")
        return
    print(f"{'MACHINE':<8} {'ADDRESS':<13} STATE")
    for m in names:
        print(f"{m:<8} {mc.addr(m):<13} {mc.state(m) or 'off'}")
    print()
    subprocess.run([str(ROOT / "scripts/status"), "--inventory", str(TEST_INVENTORY)])


def down():
    names = mc.machines()
    for m in names:  # all at once; each removal then waits for its own
        mc.power_off(m)
    for m in names:
        mc.remove(m)
    mc.leftovers_down()
    if mc.link_exists(mc.BRIDGE):
        mc.run("ip", "link", "del", mc.BRIDGE)
        log(f"bridge {mc.BRIDGE}: removed")
    # The secrets and keys belong to this cluster; the next `up` makes new ones.
    for p in ("secrets", "ssh", "machines", "jobs"):
        shutil.rmtree(TEST_CLUSTER / p, ignore_errors=True)
    for p in ("inventory.yml", "artifacts.json"):
        (TEST_CLUSTER / p).unlink(missing_ok=True)
    log("cluster down")


def main():
    p = argparse.ArgumentParser(prog="scripts/cluster", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n")[1])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("up").add_argument("--machines", type=int, default=int(os.environ.get("CLUSTER_MACHINES", "3")))
    for name in ("remove", "start"):
        sub.add_parser(name).add_argument("machine")
    r = sub.add_parser("reboot")
    r.add_argument("machine")
    r.add_argument("--hard", action="store_true", help="a power cut, then a boot")
    e = sub.add_parser("exec")
    e.add_argument("machine")
    e.add_argument("argv", nargs=argparse.REMAINDER)
    for name in ("status", "env", "down"):
        sub.add_parser(name)
    args = p.parse_args()
    if args.command == "env":
        os.execv(str(ROOT / "scripts/deploy"), [str(ROOT / "scripts/deploy"), "env", "-i", str(TEST_INVENTORY)])
    need_root()
    if args.command == "up":
        # What making machines and deploying onto them needs (quick when all is there).
        subprocess.run([str(ROOT / "scripts/install"), "--for", "cluster"], check=True)
    need_tools()
    held = lock() if args.command in ("up", "remove", "down", "reboot", "start") else None
    try:
        {"up": lambda: up(args.machines), "remove": lambda: remove(args.machine),
         "reboot": lambda: reboot(args.machine, args.hard), "start": lambda: start(args.machine),
         "status": status, "down": down,
         "exec": lambda: sys.exit(mc.in_machine(args.machine, *args.argv, check=False).returncode)}[args.command]()
    except subprocess.CalledProcessError as err:
        sys.exit(f"error: {' '.join(map(str, err.cmd[:3]))}... exited {err.returncode}")
    finally:
        if held:
            held.close()


if __name__ == "__main__":
    main()
