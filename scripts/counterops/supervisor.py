"""Background processes: the local stack's own, started and stopped the way
systemd would (their unit's lines, scripts/counterops/units.py), and the test
machines' (machines.py). Each has a PID file holding "<pid> <start time>",
so a later process that reused the PID is never taken for it; a local
component's is $COUNTER_STATE/run/<name>.pid, its output
$COUNTER_STATE/log/<name>.log.
"""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .common import log
from .target import BIN, LOCAL_STATE
from .units import Unit, UnitError

RUN_DIR, LOG_DIR = LOCAL_STATE / "run", LOCAL_STATE / "log"
PACKAGE = Path(__file__).resolve().parent
ARTIFACTS = LOCAL_STATE.parent / "artifacts"
ARTIFACT_PORT = int(os.environ.get("ARTIFACT_PORT", "8090"))


@dataclass
class Component:
    name: str
    ports: list
    unit: Unit = None
    argv: list = field(default_factory=list)  # without a unit


# In start order; scripts/down stops them in reverse. Traefik, web, web-inc
# and the autoscaler are Nomad jobs, not processes of ours.
COMPONENTS = [
    Component("redis-primary", [6380], Unit("counter-redis@.service", "primary")),
    Component("redis-replica", [6381], Unit("counter-redis@.service", "replica")),
    Component("sentinel", [26380], Unit("counter-sentinel.service")),
    Component("consul", [8500, 8300, 8301, 8302], Unit("consul.service")),
    Component("role-watch", [], Unit("counter-redis-role-watch.service")),
    Component("nomad", [4646, 4647, 4648], Unit("nomad.service")),
    Component("artifacts", [ARTIFACT_PORT], argv=["python3", "-m", "http.server", "--bind", "127.0.0.1",
                                                  "--directory", str(ARTIFACTS), str(ARTIFACT_PORT)]),
]
BY_NAME = {c.name: c for c in COMPONENTS}


def stat(pid, field):
    """Field FIELD (1-based, as in proc(5)) of /proc/<pid>/stat: read after
    "pid (comm) ", as comm may hold spaces; None once the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1].split()[field - 3]
    except (OSError, IndexError):
        return None


def start_time(pid):
    return stat(pid, 22)


def read_pid(path):
    """The PID a PID file names, if that process still runs."""
    try:
        recorded, started = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return int(recorded) if start_time(recorded) == started else None


def write_pid(path, p):
    path.write_text(f"{p} {start_time(p)}\n")


def pid(name):
    """The PID of the running component NAME, or None."""
    return read_pid(RUN_DIR / f"{name}.pid")


def port_owner(port):
    """Who listens on a TCP port of loopback, or None."""
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
    if not out.strip():
        return None
    first = out.splitlines()[0]
    return first.split("users:", 1)[1] if "users:" in first else "a process not visible to this user"


def run_lines(c, key):
    for argv, ignore in c.unit.commands(key):
        if subprocess.run(argv, stdin=subprocess.DEVNULL).returncode != 0 and not ignore:
            raise UnitError(f"systemd/{c.unit.file}: {key} failed: {' '.join(argv)}")


def fingerprint(c):
    """What C runs: its command and environment, its program's real path, and
    the code of this checkout's package when it runs from it (the role
    watch). A component that runs with another fingerprint (started by
    another checkout, or by older code) is restarted."""
    argv, env = (c.unit.command(), c.unit.environment()) if c.unit else (c.argv, {})
    parts = [*argv, os.path.realpath(shutil.which(argv[0]) or argv[0]), *sorted(f"{k}={v}" for k, v in env.items())]
    if env.get("PYTHONPATH", "").startswith(str(PACKAGE.parent)):
        parts += [f.read_text() for f in sorted(PACKAGE.glob("*.py"))]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def stale(c):
    """Whether C runs, but not what this checkout would start."""
    started = RUN_DIR / f"{c.name}.fingerprint"
    return pid(c.name) is not None and (not started.exists() or started.read_text() != fingerprint(c))


def start(c):
    """Starts C in the background unless it runs; runs its unit's ExecStartPre."""
    if running := pid(c.name):
        log(f"{c.name}: already running (pid {running})")
        return
    for port in c.ports:
        if owner := port_owner(port):
            raise UnitError(f"port {port} is in use by {owner}; stop it or run scripts/down")
    for d in (RUN_DIR, LOG_DIR):
        d.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOMAD_", "CONSUL_"))}
    env["PATH"] = f"{BIN}:{env['PATH']}"
    argv = c.argv
    if c.unit:
        for d in c.unit.state_dirs():
            d.mkdir(parents=True, exist_ok=True)
        run_lines(c, "ExecStartPre")
        env.update(c.unit.environment())
        argv = c.unit.command()
    with open(LOG_DIR / f"{c.name}.log", "ab") as out:
        # A session of its own: it outlives scripts/up and ignores its Ctrl-C;
        # no descriptor but stdio is inherited (a lock the caller holds must
        # not outlive it in the daemons).
        proc = subprocess.Popen(argv, cwd=LOCAL_STATE, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    write_pid(RUN_DIR / f"{c.name}.pid", proc.pid)
    (RUN_DIR / f"{c.name}.fingerprint").write_text(fingerprint(c))
    log(f"{c.name}: started (pid {proc.pid}, log {LOG_DIR / (c.name + '.log')})")


def wait_ready(c, ready, timeout=60):
    """Until READY() holds; on an early exit or a timeout, the end of its log.
    Then its unit's ExecStartPost, as systemd runs it once the service is up."""
    deadline = time.monotonic() + timeout
    while not ready():
        if pid(c.name) is None or time.monotonic() > deadline:
            tail = (LOG_DIR / f"{c.name}.log").read_text(errors="replace").splitlines()[-20:]
            print("\n".join(tail), file=sys.stderr)
            raise UnitError(f"{c.name} {'exited during startup' if pid(c.name) is None else f'not ready after {timeout}s'}"
                            f"; log: {LOG_DIR / (c.name + '.log')}")
        time.sleep(0.2)
    if c.unit:
        run_lines(c, "ExecStartPost")
    log(f"{c.name}: ready")


def stop_pid(label, p, sig, timeout):
    """Signals a process and waits for it to exit; SIGKILL once it outstays TIMEOUT."""
    try:
        os.kill(p, sig)
    except (ProcessLookupError, TypeError):
        return
    deadline = time.monotonic() + timeout
    while (state := stat(p, 3)) is not None:
        if state == "Z":
            return  # exited; only its parent's wait is missing
        if time.monotonic() > deadline:
            log(f"warning: {label} (pid {p}) ignored {sig.name} for {timeout}s; killing it")
            os.kill(p, signal.SIGKILL)
            time.sleep(0.2)
            return
        time.sleep(0.2)


def descendants(root):
    """[(pid, start time)] of every process below ROOT."""
    parent = {int(p): int(stat(p, 4) or 0) for p in os.listdir("/proc") if p.isdigit()}
    out, frontier = [], {root}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier and p != root}
        out += [(p, start_time(p)) for p in frontier]
    return out


def stop(c):
    """Stops C with its unit's KillSignal, then whatever it started that
    outlived it (Nomad's executors and tasks: nomad.service keeps them across
    agent restarts, scripts/down does not)."""
    if running := pid(c.name):
        sig = signal.Signals[c.unit.kill_signal()] if c.unit else signal.SIGTERM
        children = descendants(running)
        log(f"{c.name}: stopping (pid {running}, {sig.name})")
        stop_pid(c.name, running, sig, 30)
        for child, started in children:
            if started and start_time(child) == started:
                log(f"{c.name}: stopping its leftover {os.path.realpath(f'/proc/{child}/exe')} (pid {child})")
                stop_pid(f"{c.name} child", child, signal.SIGTERM, 15)
    (RUN_DIR / f"{c.name}.pid").unlink(missing_ok=True)
