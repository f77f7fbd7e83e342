"""The one-machine ("local") Counter stack, all on loopback: start it (up)
and stop it (down). scripts/up and scripts/down are its entry points.

  Redis primary :6380, replica :6381, Sentinel :26380   (their systemd units' lines)
  Consul :8500, the Redis role watch, Nomad :4646       (likewise)
  artifact store :8090 serving the packaged web and web-inc binaries
  Nomad jobs traefik (gateway :8080, admin :8081, dashboard :8079), web (2),
  web-inc (1) and autoscaler, each job's tasks as an unprivileged system
  user of its own (counter_task_users: counter-web, ...)

Configs are rendered from the templates a cluster uses (counterops.render),
secrets generated once into $COUNTER_STATE/secrets (0700, files 0600), ACLs
applied from acl.toml, jobs submitted through counterops.jobs: the local
stack is a cluster of one machine without TLS. Idempotent: what runs is left
alone, a component whose config changed is restarted, unchanged jobs are not
resubmitted.
"""

import argparse
import grp
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
import types
import urllib.request
from pathlib import Path

from . import acl, client, jobs, render, secrets, supervisor, target
from .common import log, until
from .supervisor import BY_NAME, COMPONENTS
from .target import BIN, LOCAL_STATE
from .units import DATA, ETC, UnitError

ROOT = Path(__file__).resolve().parents[2]
SECRETS = LOCAL_STATE / "secrets"
JOBS_DIR = LOCAL_STATE / "jobs"
# Where Nomad puts the allocation directories and the binaries the gateway
# and autoscaler tasks run, when tasks run as the task user: outside
# $COUNTER_STATE, because a home directory (/root is 0700) is no path another
# user can traverse. Root-owned; alloc/ 0710 with TASK_GROUP, the group every
# task user is in (besides its own), so tasks reach their allocation.
TASK_ROOT = Path(os.environ.get("COUNTER_TASK_ROOT", "/var/lib/counter-local"))
AS_ROOT = os.geteuid() == 0
# Where the prometheus job keeps its data: outside its allocations, so that
# it outlives them; under TASK_ROOT (its user can reach it) when run as root.
METRICS_DATA = (TASK_ROOT if AS_ROOT else LOCAL_STATE) / "prometheus"
TASK_GROUP = "counter-tasks"
GATEWAY = "http://127.0.0.1:8080"
# Which component reads which rendered file: a running one is restarted when it changes.
READERS = {"consul.d/": "consul", "nomad.d/": "nomad", "redis/primary.conf": "redis-primary",
           "redis/replica.conf": "redis-replica", "redis/users.acl": "redis-primary redis-replica",
           "redis/sentinel.conf": "sentinel", "redis/role-watch.env": "role-watch"}
# Bumped when the local stack's layout changes so much that a stack started
# by an older checkout is stopped (its data kept) rather than updated.
LAYOUT = "3"


def answers(fn):
    try:
        return bool(fn())
    except (OSError, client.ApiError):
        return False


def ready(c):
    """Whether a component answers: Consul once it has a leader (registrations
    fail until one is elected), the others once their first port accepts."""
    if c.name == "consul":
        return ":" in client.consul("http://127.0.0.1:8500", retries=0).get("/v1/status/leader")
    for port in c.ports[:1]:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    return True


def ensure_task_users():
    """The system users the jobs' tasks run as, one per job (no login, no
    home; counter_task_users in the shared settings), each also in TASK_GROUP,
    and TASK_ROOT with the binaries the tasks run; only as root."""
    if not AS_ROOT:
        log(f"warning: not root: Nomad cannot switch users, so tasks run as {pwd.getpwuid(os.getuid()).pw_name}")
        for sub in ("prometheus", "alertmanager"):
            (METRICS_DATA / sub).mkdir(parents=True, exist_ok=True)
        return
    try:
        grp.getgrnam(TASK_GROUP)
    except KeyError:
        subprocess.run(["groupadd", "--system", TASK_GROUP], check=True)
    uids = render.settings()["counter_task_uids"]
    for job, user in render.settings()["counter_task_users"].items():
        ensure_user(job, user, uids[job])
        if user not in grp.getgrnam(TASK_GROUP).gr_mem:
            subprocess.run(["usermod", "--append", "--groups", TASK_GROUP, user], check=True)
    gid = grp.getgrnam(TASK_GROUP).gr_gid
    for d, mode in ((TASK_ROOT, 0o755), (TASK_ROOT / "bin", 0o755), (TASK_ROOT / "alloc", 0o710)):
        d.mkdir(parents=True, exist_ok=True)
        os.chown(d, 0, gid if d.name == "alloc" else 0)
        d.chmod(mode)
    # Prometheus' and Alertmanager's data: its job's user's alone, down to
    # every file (what an older uid of that user wrote too).
    owner = pwd.getpwnam(render.settings()["counter_task_users"]["prometheus"])
    for sub in ("prometheus", "alertmanager"):
        (METRICS_DATA / sub).mkdir(parents=True, exist_ok=True)
    METRICS_DATA.chmod(0o700)
    for path in [METRICS_DATA, *METRICS_DATA.rglob("*")]:
        if (path.lstat().st_uid, path.lstat().st_gid) != (owner.pw_uid, owner.pw_gid):
            os.chown(path, owner.pw_uid, owner.pw_gid, follow_symlinks=False)
    for tool in ("traefik", "nomad-autoscaler"):
        src, dst = (BIN / tool).resolve(), TASK_ROOT / "bin" / tool
        if not dst.exists() or dst.read_bytes() != src.read_bytes():
            shutil.copy(src, f"{dst}.tmp")
            os.chmod(f"{dst}.tmp", 0o755)
            os.replace(f"{dst}.tmp", dst)


def ensure_user(job, user, uid):
    """USER with uid UID in its own group of gid UID (counter_task_uids: Nomad
    renders the job's secret files owned by that number). An account made
    before the ids were fixed is moved to them, which needs none of its
    processes running."""
    def change(command):
        out = subprocess.run(command, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"error: {' '.join(command)}: {out.stderr.strip()}\n"
                     f"  stop what runs as {user} (scripts/down) and run scripts/up again")

    try:
        if grp.getgrnam(user).gr_gid != uid:
            log(f"moving the group {user} to gid {uid} (counter_task_uids)")
            change(["groupmod", "--gid", str(uid), user])
    except KeyError:
        change(["groupadd", "--system", "--gid", str(uid), user])
    try:
        have = pwd.getpwnam(user)
    except KeyError:
        change(["useradd", "--system", "--uid", str(uid), "--gid", str(uid), "--no-create-home",
                "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                "--comment", f"Counter {job} tasks (Nomad raw_exec)", user])
        log(f"created the system user {user} (uid {uid}) for the {job} tasks")
        return
    if (have.pw_uid, have.pw_gid) != (uid, uid):
        log(f"moving the system user {user} from uid {have.pw_uid} to {uid} (counter_task_uids)")
        change(["usermod", "--uid", str(uid), "--gid", str(uid), user])


def render_configs():
    """The configs, and the running components whose config changed."""
    layout = ETC / ".layout"
    if any(supervisor.pid(c) for c in (*BY_NAME, "autoscaler")) and \
            (not layout.exists() or layout.read_text().strip() != LAYOUT):
        log("the running stack was started by an older checkout: stopping it first (its data stays)")
        down()
    changed = render.write_local(ETC, SECRETS, TASK_ROOT / "alloc" if AS_ROOT else None)
    layout.write_text(LAYOUT + "\n")
    restart = {c for name in changed for prefix, readers in READERS.items() if name.startswith(prefix)
               for c in readers.split()}
    return [c.name for c in COMPONENTS if (c.name in restart and supervisor.pid(c.name)) or supervisor.stale(c)]


def preflight():
    """Every port of a component that is not running must be free, checked
    before anything starts so a conflict leaves no half a stack behind."""
    ports = [p for c in COMPONENTS if not supervisor.pid(c.name) for p in c.ports]
    if not answers(lambda: urllib.request.urlopen("http://127.0.0.1:8081/ping", timeout=1)):
        ports += [8080, 8081, 8079]  # the gateway's, unless the traefik job runs
    for port in ports:
        if owner := supervisor.port_owner(port):
            sys.exit(f"error: port {port} is in use by {owner}; stop it or run scripts/down")


def up(artifacts):
    """Starts what is not running, applies the ACLs, submits the jobs."""
    secrets.ensure(SECRETS, ["local"])
    ensure_task_users()
    restart = render_configs()
    preflight()
    t = target.local()
    for c in COMPONENTS:
        if c.name in restart:
            log(f"{c.name}: its configuration or program changed; restarting it")
            supervisor.stop(c)
        supervisor.start(c)
        supervisor.wait_ready(c, lambda c=c: answers(lambda: ready(c)))
        if c.name == "consul":
            # Policies and tokens before Nomad starts, so its agent token works at once.
            acl.apply(t, "consul")
        if c.name == "nomad":
            acl.apply(t, "nomad")
            until("the Nomad node to be ready", lambda: any(
                n["Status"] == "ready" for n in t.nomad(retries=0).get("/v1/nodes")), 60, 0.2, (client.ApiError,))
    bins = TASK_ROOT / "bin" if AS_ROOT else BIN.resolve()
    args = types.SimpleNamespace(
        jobs=[], vars_dir=str(JOBS_DIR), artifact=artifacts, artifact_url=f"http://127.0.0.1:{supervisor.ARTIFACT_PORT}",
        keep_artifacts=False, clients=None, timeout=180, detach=False,
        # Not root: Nomad cannot switch users; the tasks run as the agent's.
        set=[*([] if AS_ROOT else ["task_user=", "task_uid=-1"]), f"traefik:traefik_binary={(bins / 'traefik').resolve()}",
             f"autoscaler:autoscaler_binary={(bins / 'nomad-autoscaler').resolve()}",
             f"prometheus:data_dir={METRICS_DATA}",
             f"exporters:redis_ports={render.PRIMARY_PORT},{render.REPLICA_PORT},{render.settings()['counter_sentinel_port']}"])
    jobs.deploy(t, args)
    log(f"waiting for the gateway to answer {GATEWAY}/")
    until(f"{GATEWAY}/ through Traefik", lambda: answers(lambda: urllib.request.urlopen(GATEWAY + "/", timeout=2)),
          60, 0.2)


def stop_jobs():
    """Stops the jobs while Nomad still runs, waits until their allocations
    have exited (shutdown_delay + drain: a few seconds), then purges them."""
    if not supervisor.pid("nomad") or not answers(lambda: ready(BY_NAME["nomad"])):
        return
    nomad = target.local().nomad(retries=0)
    listed = [j["ID"] for j in nomad.get("/v1/jobs") or []]
    if not listed:
        return
    log(f"stopping Nomad jobs: {' '.join(listed)}")
    # The autoscaler and the services first, the gateway last.
    for job in sorted(listed, key=lambda j: j == "traefik"):
        nomad.delete(f"/v1/job/{job}")
    deadline = time.monotonic() + 60
    while live := [a["Name"] for a in nomad.get("/v1/allocations") if a["ClientStatus"] in ("running", "pending")]:
        if time.monotonic() > deadline:
            log(f"warning: allocations still running after 60s: {' '.join(live)}")
            break
        time.sleep(0.5)
    for job in listed:
        nomad.delete(f"/v1/job/{job}", params={"purge": "true"}, ok=(200, 404))


def stop_leftovers():
    """Nomad tasks and executors no agent of ours supervises any more, found by
    the allocation directory in their executable or command line, never by name."""
    marks = (f"{DATA}/nomad/", f"{TASK_ROOT}/")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            exe = os.readlink(f"/proc/{entry}/exe")
            cmdline = open(f"/proc/{entry}/cmdline", "rb").read().decode(errors="replace").replace("\0", " ")
        except OSError:
            continue
        if any(m in exe or m in cmdline for m in marks):
            log(f"stopping leftover {exe} (pid {entry})")
            supervisor.stop_pid(exe, int(entry), supervisor.signal.SIGTERM, 15)


def purge():
    """Deletes the state (unmounting what Nomad left mounted in its allocation
    directories): the next scripts/up starts from a count of 0."""
    alloc = TASK_ROOT / "alloc"
    mounts = [line.split()[4] for line in open("/proc/self/mountinfo")]
    for m in sorted(mounts, reverse=True):
        if m.startswith((f"{DATA}/", f"{alloc}/")):
            subprocess.run(["umount", m], stderr=subprocess.DEVNULL)
    for d in (DATA, JOBS_DIR, ETC, alloc, METRICS_DATA):
        shutil.rmtree(d, ignore_errors=True)
    log(f"purged {DATA} (the count starts again at 0)")


def down(purge_state=False):
    stop_jobs()
    # Processes of older layouts (a PID file of a component this one has not) first.
    others = [f.stem for f in supervisor.RUN_DIR.glob("*.pid") if f.stem not in BY_NAME]
    for name in others:
        supervisor.stop(supervisor.Component(name, []))
    for c in reversed(COMPONENTS):
        supervisor.stop(c)
    stop_leftovers()
    if purge_state:
        purge()
    log("local stack stopped")


def main():
    p = argparse.ArgumentParser(prog="python -m counterops.local", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    u = sub.add_parser("up")
    u.add_argument("--artifact", action="append", default=[], metavar="SERVICE=VERSION:SHA256")
    d = sub.add_parser("down")
    d.add_argument("--purge", action="store_true")
    args = p.parse_args()
    try:
        if args.command == "up":
            up(args.artifact)
        else:
            down(args.purge)
    except (UnitError, client.ApiError, target.TargetError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
