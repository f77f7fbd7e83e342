"""The test machines of scripts/cluster: Debian bookworm systems booted with
systemd as PID 1 under systemd-nspawn, each in its own network namespace on
a bridge, with an SSH server whose host key this host knows and an
authorized key of this host's. From then on the deploy reaches them exactly
as it reaches real hosts; only making, breaking, rebooting and removing
machines reaches into them from here.

Layout (docs/cluster.md): bridge ctr0 198.18.0.1/24 (this host), machine mN
at 198.18.0.(10+N) in network namespace counter-mN (veth ctr-mN <-> eth0),
the floating gateway address 198.18.0.250. Every machine is an overlayfs
copy of one cached rootfs ($COUNTER_CACHE/rootfs, built once by debootstrap).

A machine's systemd-nspawn runs under a small supervisor that boots it again
when it reboots (nspawn exits with 133 on a reboot, as systemd-nspawn@.service
relies on) and lets it stay off when it powers off. What a machine needs at
boot is in place before its units start, on every boot: its network
namespace outlives it, and its cgroup controllers are made writable by a unit
of its own (counter-machine-cgroups.service, before nomad.service).
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .common import log
from .supervisor import read_pid, start_time, write_pid
from .target import CACHE, TEST_CLUSTER

BRIDGE, NET = "ctr0", "198.18.0"
HOST_ADDR, GATEWAY_VIP = f"{NET}.1", f"{NET}.250"
ROOTFS_SUITE = "bookworm"
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
# What a real host of docs/deploy.md has before the deploy: systemd, an SSH
# server, Python for Ansible (python3-apt for its apt module), and the Debian
# packages the deploy would otherwise install (the machines have no route to
# a mirror, so the deploy finds them present).
ROOTFS_PACKAGES = ["systemd", "systemd-sysv", "dbus", "iproute2", "openssh-server", "python3", "python3-apt",
                   "redis-server", "redis-sentinel", "redis-tools", "curl", "ca-certificates", "procps", "keepalived",
                   "prometheus", "prometheus-alertmanager", "prometheus-node-exporter", "prometheus-redis-exporter"]
# The cgroup v1 controllers Nomad's client manages (docs/cluster.md).
NOMAD_CGROUPS = ["cpu", "cpuset", "memory", "freezer"]
MACHINES = TEST_CLUSTER / "machines"
SSH_DIR = TEST_CLUSTER / "ssh"
REBOOT = 133  # systemd-nspawn's exit status when the machine reboots

# This host runs cgroups v1, and nspawn mounts the v1 controllers read-only
# into a machine (only name=systemd is writable), where the Nomad client
# cannot create its cgroups ("mkdir /sys/fs/cgroup/memory/nomad: read-only
# file system"). At every boot, before Nomad, each controller Nomad uses gets
# a subtree counter/<machine>, bind-mounted over the controller: Nomad sees a
# cgroup root of its own, as on a real host, and machines never share one.
CGROUPS_SCRIPT = """#!/bin/sh
# Written by scripts/cluster (counterops/machines.py): this test machine's
# writable cgroup controllers, made at every boot before Nomad starts.
set -e
[ -d /sys/fs/cgroup/memory ] || exit 0  # cgroup v2: nspawn delegates a writable subtree
grep -q " /counter/$(hostname) /sys/fs/cgroup/memory " /proc/self/mountinfo && exit 0
for c in {controllers}; do
  d=/sys/fs/cgroup/$c
  mount --make-private "$d"
  mount -o remount,bind,rw "$d"
  mkdir -p "$d/counter/$(hostname)"
  if [ "$c" = cpuset ]; then
    for f in cpuset.cpus cpuset.mems; do
      cat "$d/$f" >"$d/counter/$f"
      cat "$d/$f" >"$d/counter/$(hostname)/$f"
    done
  fi
  mount --bind "$d/counter/$(hostname)" "$d"
  mount --make-private "$d"
done
"""
CGROUPS_UNIT = """[Unit]
Description=Writable cgroup controllers of this test machine (scripts/cluster)
DefaultDependencies=no
After=local-fs.target
Before=nomad.service sysinit.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/counter-machine-cgroups

[Install]
WantedBy=sysinit.target
"""


def run(*argv, check=True, **kw):
    return subprocess.run(argv, check=check, **kw)


def addr(m):
    """mN's address, 198.18.0.(10+N)."""
    return f"{NET}.{10 + int(m[1:])}"


def machines():
    """The machines that have state, in order (m1 m2 ...)."""
    return sorted((d.name for d in MACHINES.glob("m*") if d.is_dir()), key=lambda m: int(m[1:]))


def supervisor_pid(m):
    """The PID of the machine's supervisor (its nspawn runs below it), if it runs."""
    return read_pid(MACHINES / m / "nspawn.pid")


def children(pid):
    out = run("pgrep", "-P", str(pid), check=False, capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def leader_pid(m):
    """The PID of the machine's PID 1 (its systemd), seen from here."""
    sup = supervisor_pid(m)
    for nspawn in children(sup) if sup else []:
        for child in children(nspawn):
            if comm(child) == "systemd":
                return child
    return None


def in_machine(m, *argv, **kw):
    """A command inside the machine, in all its namespaces, with a clean
    environment (faults and debugging only)."""
    pid = leader_pid(m)
    if pid is None:
        raise SystemExit(f"error: machine {m} is not running (scripts/cluster up)")
    env = ["env", "-i", "HOME=/root", f"TERM={os.environ.get('TERM', 'dumb')}", "LANG=C.UTF-8",
           "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    return run("nsenter", "--target", str(pid), "--all", *env, *argv, **kw)


# ------------------------------------------------------------------ rootfs, network, keys

def rootfs():
    """The cached Debian rootfs, built first if needed; keyed by its package
    list (.counter-packages), so adding a package builds a new one."""
    want = "\n".join(ROOTFS_PACKAGES)
    for d in sorted((CACHE / "rootfs").glob(f"{ROOTFS_SUITE}-*")):
        if (d / ".counter-packages").is_file() and (d / ".counter-packages").read_text().strip() == want:
            return d
    d = CACHE / "rootfs" / f"{ROOTFS_SUITE}-{time.strftime('%Y%m%d-%H%M%S')}"
    tmp = Path(f"{d}.tmp")
    log(f"building the machines' rootfs {d} from {MIRROR} (once; a few minutes)")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{d}.log", "w") as out:
        if run("debootstrap", "--variant=minbase", f"--include={','.join(ROOTFS_PACKAGES)}", ROOTFS_SUITE,
               str(tmp), MIRROR, check=False, stdout=out, stderr=subprocess.STDOUT).returncode:
            raise SystemExit(f"error: debootstrap failed (log: {d}.log); set DEBIAN_MIRROR to a reachable mirror")
    # Debian's own Redis, Sentinel, Prometheus and exporters are not part of
    # the cluster (Counter runs its own); the deploy masks them too, as on a
    # real host.
    run("chroot", str(tmp), "systemctl", "mask", "-q", "redis-server.service", "redis-sentinel.service",
        "prometheus.service", "prometheus-alertmanager.service", "prometheus-node-exporter.service",
        "prometheus-redis-exporter.service", "apt-daily.timer", "apt-daily-upgrade.timer")
    for key in tmp.glob("etc/ssh/ssh_host_*"):
        key.unlink()  # every machine gets its own at its first boot
    (tmp / "etc/resolv.conf").write_text("")  # no DNS on the cluster network
    (tmp / ".counter-packages").write_text(want + "\n")
    tmp.rename(d)
    log(f"rootfs ready: {d}")
    return d


def link_exists(name):
    return run("ip", "link", "show", name, check=False, capture_output=True).returncode == 0


def net_up():
    if not link_exists(BRIDGE):
        run("ip", "link", "add", BRIDGE, "type", "bridge")
        run("ip", "addr", "add", f"{HOST_ADDR}/24", "dev", BRIDGE)
        log(f"bridge {BRIDGE}: {HOST_ADDR}/24")
    run("ip", "link", "set", BRIDGE, "up")


def machine_net_up(m):
    """Its namespace counter-<m>, veth ctr-<m> <-> eth0, its address; the
    floating gateway address it may have held is gone, as on a host that boots."""
    ns, veth = f"counter-{m}", f"ctr-{m}"
    if not Path(f"/run/netns/{ns}").exists():
        run("ip", "netns", "add", ns)
    if not link_exists(veth):
        run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
    run("ip", "link", "set", veth, "master", BRIDGE, "up")
    run("ip", "-n", ns, "link", "set", "lo", "up")
    run("ip", "-n", ns, "addr", "replace", f"{addr(m)}/24", "dev", "eth0")
    run("ip", "-n", ns, "addr", "del", f"{GATEWAY_VIP}/24", "dev", "eth0", check=False, capture_output=True)
    run("ip", "-n", ns, "link", "set", "eth0", "up")


def machine_net_down(m):
    run("ip", "link", "del", f"ctr-{m}", check=False, capture_output=True)
    if Path(f"/run/netns/counter-{m}").exists():
        run("ip", "netns", "del", f"counter-{m}", check=False)


def ssh_key():
    """This cluster's operator key (made once per cluster)."""
    SSH_DIR.mkdir(parents=True, exist_ok=True)
    SSH_DIR.chmod(0o700)
    if not (SSH_DIR / "id_ed25519").exists():
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "counter-cluster-operator",
            "-f", str(SSH_DIR / "id_ed25519"))
    (SSH_DIR / "known_hosts").touch()


def known_hosts_without(address):
    path = SSH_DIR / "known_hosts"
    return [line for line in path.read_text().splitlines() if line and not line.startswith(address + " ")]


# ------------------------------------------------------------------ one machine

def machine_files(m, root):
    """What makes the copy of the rootfs this machine: its name, machine id,
    SSH host key (recorded in this cluster's known_hosts), the operator's
    authorized key, and its boot-time cgroups unit."""
    (root / "etc/hostname").write_text(m + "\n")
    (root / "etc/hosts").write_text(f"127.0.0.1 localhost\n::1 localhost\n{addr(m)} {m}\n")
    machine_id = root / "etc/machine-id"
    if not machine_id.exists() or not machine_id.read_text().strip():
        machine_id.write_text(os.urandom(16).hex() + "\n")
    host_key = root / "etc/ssh/ssh_host_ed25519_key"
    if not host_key.exists():
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{m}", "-f", str(host_key))
    # Only the key made here: sshd offers no other, so the known_hosts line is
    # the one every connection is checked against.
    (root / "etc/ssh/sshd_config.d/counter.conf").write_text(
        "HostKey /etc/ssh/ssh_host_ed25519_key\nPasswordAuthentication no\nPermitRootLogin prohibit-password\n"
        "UseDNS no\n")
    public = " ".join(Path(f"{host_key}.pub").read_text().split()[:2])
    (SSH_DIR / "known_hosts").write_text("\n".join(known_hosts_without(addr(m)) + [f"{addr(m)} {public}"]) + "\n")
    (root / "root/.ssh").mkdir(mode=0o700, exist_ok=True)
    shutil.copy(SSH_DIR / "id_ed25519.pub", root / "root/.ssh/authorized_keys")
    (root / "root/.ssh/authorized_keys").chmod(0o600)
    script = root / "usr/local/sbin/counter-machine-cgroups"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(CGROUPS_SCRIPT.replace("{controllers}", " ".join(NOMAD_CGROUPS)))
    script.chmod(0o755)
    (root / "etc/systemd/system/counter-machine-cgroups.service").write_text(CGROUPS_UNIT)
    wants = root / "etc/systemd/system/sysinit.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / "counter-machine-cgroups.service"
    if not link.is_symlink():
        link.symlink_to("/etc/systemd/system/counter-machine-cgroups.service")


def boot(m, lower):
    """Overlay, files, network, and systemd-nspawn --boot under its supervisor."""
    d = MACHINES / m
    if supervisor_pid(m):
        log(f"{m}: already running")
        return
    root = d / "root"
    for sub in ("upper", "work", "root"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    if run("mountpoint", "-q", str(root), check=False).returncode:
        run("mount", "-t", "overlay", f"counter-{m}", "-o",
            f"lowerdir={lower},upperdir={d / 'upper'},workdir={d / 'work'}", str(root))
    machine_files(m, root)
    machine_net_up(m)
    # --register=no --keep-unit: this host's PID 1 is not systemd (no
    # machined). --resolv-conf=off: no DNS on the cluster network.
    # CAP_NET_ADMIN (in the machine's own network namespace only): keepalived
    # adds and removes the floating gateway address, as on a real host.
    nspawn = ["systemd-nspawn", "--boot", "--register=no", "--keep-unit", "--quiet", f"--machine={m}",
              f"--directory={root}", f"--network-namespace-path=/run/netns/counter-{m}",
              "--capability=CAP_NET_ADMIN", "--resolv-conf=off", "--timezone=off", "--link-journal=no"]
    # The supervisor: boots the machine again when it reboots (exit 133), not
    # when it powers off.
    loop = f'while "$@"; [ $? -eq {REBOOT} ]; do echo "== reboot $(date -u +%FT%TZ)"; done'
    with open(d / "console.log", "ab") as console:
        proc = subprocess.Popen(["sh", "-c", loop, "supervisor", *nspawn], stdin=subprocess.DEVNULL,
                                stdout=console, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    write_pid(d / "nspawn.pid", proc.pid)
    log(f"{m}: booting ({addr(m)}, console: {d / 'console.log'})")


def state(m):
    """Its systemd's overall state (running, degraded, starting, ...), or None."""
    if leader_pid(m) is None:
        return None
    out = in_machine(m, "systemctl", "is-system-running", check=False, capture_output=True, text=True).stdout
    return out.strip() or None


def ssh_answers(m):
    return run("ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=2", "-o", "IdentitiesOnly=yes",
               "-i", str(SSH_DIR / "id_ed25519"), "-o", f"UserKnownHostsFile={SSH_DIR / 'known_hosts'}",
               "-o", "StrictHostKeyChecking=yes", f"root@{addr(m)}", "true", check=False,
               capture_output=True).returncode == 0


def wait(what, predicate, timeout):
    deadline, report = time.monotonic() + timeout, time.monotonic() + 10
    while not predicate():
        if time.monotonic() > deadline:
            return False
        if time.monotonic() > report:
            log(f"still waiting for {what}")
            report = time.monotonic() + 10
        time.sleep(1)
    return True


def wait_booted(m):
    """Until its systemd finished starting up and its SSH server lets this
    host's key in."""
    if not wait(f"{m} to boot", lambda: state(m) in ("running", "degraded"), 150):
        print((MACHINES / m / "console.log").read_text(errors="replace")[-3000:], file=sys.stderr)
        raise SystemExit(f"error: {m}: did not finish booting (state: {state(m)})")
    if state(m) == "degraded":
        failed = in_machine(m, "systemctl", "--failed", "--no-legend", "--plain", capture_output=True,
                            text=True, check=False).stdout.split()
        log(f"warning: {m}: booted, degraded: {' '.join(failed[::4])}")
    if not wait(f"{m}'s SSH server", lambda: ssh_answers(m), 60):
        raise SystemExit(f"error: {m}: its SSH server does not let this host's key in")
    log(f"{m}: booted, SSH answers")


def start(m):
    """Boots a machine that is off, with its disk as it was."""
    if supervisor_pid(m):
        log(f"{m}: already running")
        return
    net_up()
    boot(m, rootfs())
    wait_booted(m)


def power_off(m):
    """Asks it to shut down (nspawn turns SIGTERM into a clean shutdown) and
    keeps the supervisor from booting it again."""
    sup = supervisor_pid(m)
    if sup is None:
        return
    log(f"{m}: powering off")
    for nspawn in children(sup):
        os.kill(nspawn, 15)
    os.kill(sup, 15)


def comm(pid):
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def nspawn_pids(m):
    """Its systemd-nspawn processes, by their command line: one outlives the
    supervisor (power_off ends that first) while its machine shuts down."""
    out = run("pgrep", "-f", f"^systemd-nspawn .*--machine={m} ", check=False, capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def wait_off(m, timeout=60):
    """Until its systemd-nspawn has exited; then kills what is left."""
    pids = sorted({*(p for sup in [supervisor_pid(m)] if sup for p in [sup, *children(sup)]), *nspawn_pids(m)})
    if not wait(f"{m} to power off", lambda: all(start_time(p) is None for p in pids), timeout):
        log(f"warning: {m}: still up after {timeout}s; killing its processes")
        # SIGKILL to its PID 1 ends every process of its PID namespace.
        leaders = [c for n in pids for c in children(n) if comm(c) == "systemd"]
        for p in filter(None, [leader_pid(m), *leaders, *pids]):
            try:
                os.kill(p, 9)
            except ProcessLookupError:
                pass
        time.sleep(1)


def remove(m):
    """Powers it off, then removes its overlay, cgroups, namespace,
    known_hosts line and state."""
    power_off(m)
    wait_off(m)
    d = MACHINES / m
    root = d / "root"
    if root.exists() and not run("mountpoint", "-q", str(root), check=False).returncode:
        if run("umount", str(root), check=False, capture_output=True).returncode:
            run("umount", "-l", str(root))
    # Its cgroup subtrees (counter/<m> under nspawn's, which --keep-unit makes
    # this process's): a cgroup still holding a process cannot go, and the
    # teardown goes on without it.
    for c in NOMAD_CGROUPS:
        for sub in Path(f"/sys/fs/cgroup/{c}").glob(f"**/counter/{m}"):
            run("find", str(sub), "-depth", "-type", "d", "-exec", "rmdir", "{}", "+", check=False,
                stderr=subprocess.DEVNULL)
    machine_net_down(m)
    if (SSH_DIR / "known_hosts").exists():
        (SSH_DIR / "known_hosts").write_text("\n".join(known_hosts_without(addr(m))) + "\n")
    shutil.rmtree(d, ignore_errors=True)
    log(f"{m}: removed")


def leftovers_down():
    """Namespaces and veths of a run that died before recording its machines."""
    for ns in run("ip", "netns", "list", capture_output=True, text=True, check=False).stdout.split("\n"):
        name = ns.split(" ")[0]
        if name.startswith("counter-m") and name[9:].isdigit():
            run("ip", "netns", "del", name, check=False)
            log(f"removed leftover namespace {name}")
    for line in run("ip", "-o", "link", "show", capture_output=True, text=True).stdout.splitlines():
        name = line.split(": ")[1].split("@")[0]
        if name.startswith("ctr-m") and name[5:].isdigit():
            run("ip", "link", "del", name, check=False)
            log(f"removed leftover veth {name}")
