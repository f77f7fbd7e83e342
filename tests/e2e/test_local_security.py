"""The local stack's access control (docs/local-stack.md, "Security"):
Nomad and Consul answer nothing without a token, the tokens live in 0600
files and nowhere else (no command line, no job spec, no task's
environment), each job's tasks run as an unprivileged system user of their
own that cannot read another job's environment or secret files, the raw_exec
driver refuses a task that asks for
root, and Redis and Sentinel answer no one without a password: another local
account can neither flush the count nor re-point a replica.

Tests that submit a job submit it under a name of their own and purge it
whatever happens; the anonymous ones cannot create anything.
"""

import grp
import os
import pwd
import re
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import CONSUL, NOMAD, SECRETS, http, redis, run, wait_for

from counterops import render, target
from counterops.redis import Redis, RedisError

# Each job's user (counter_task_users in deploy/group_vars/all/settings.yml).
TASK_USERS = render.settings()["counter_task_users"]
TASK_GROUP = "counter-tasks"
PROBE_JOB = "e2e-acl-probe"
ROOT_JOB = "e2e-root-denied"


def job_hcl(name, user=None):
    """A harmless batch job: /bin/true, once, no restart or reschedule."""
    user_line = f'      user   = "{user}"\n' if user else ""
    return f'''job "{name}" {{
  type = "batch"
  group "probe" {{
    restart {{
      attempts = 0
      mode     = "fail"
    }}
    reschedule {{
      attempts  = 0
      unlimited = false
    }}
    task "probe" {{
      driver = "raw_exec"
{user_line}      config {{
        command = "/bin/true"
      }}
      resources {{
        cpu    = 20
        memory = 16
      }}
    }}
  }}
}}
'''


def write_job(tmp_path, name, user=None):
    path = tmp_path / f"{name}.nomad.hcl"
    path.write_text(job_hcl(name, user))
    return str(path)


def purge(name):
    run("nomad", "job", "stop", "-purge", "-detach", name, check=False)


def tokens():
    """Every secret the local stack has (tokens, passwords, gossip keys): the
    files in its secrets directory."""
    out = {}
    for f in SECRETS.iterdir():
        value = f.read_text().strip()
        if value:
            out[f.name] = value
    assert len(out) >= 10, f"expected the local stack's secrets in {SECRETS}, found {sorted(out)}"
    return out


def test_anonymous_nomad_job_run_is_refused_and_the_token_passes(tmp_path):
    job = write_job(tmp_path, PROBE_JOB, user=TASK_USERS["web"])
    try:
        anon = run("nomad", "job", "run", "-detach", job, check=False, anonymous=True)
        assert anon.returncode != 0, f"anonymous job run succeeded:\n{anon.stdout}{anon.stderr}"
        assert "403" in anon.stderr or "Permission denied" in anon.stderr, anon.stderr
        # The same job, as a web page on this machine would POST it.
        body = run("nomad", "job", "run", "-output", job).stdout.encode()
        r = http(NOMAD + "/v1/jobs", method="POST", data=body,
                 headers={"Content-Type": "application/json"}, anonymous=True)
        assert r.status == 403, f"anonymous POST /v1/jobs: {r.status} {r.text}"
        assert http(NOMAD + "/v1/jobs", anonymous=True).status == 403
        # With the token scripts/env exports, the same request passes the
        # ACLs: plan (exit 1: it would create the job) creates nothing.
        plan = run("nomad", "job", "plan", job, check=False)
        assert plan.returncode in (0, 1), f"plan with the token:\n{plan.stdout}{plan.stderr}"
        assert "403" not in plan.stderr
    finally:
        purge(PROBE_JOB)
    assert http(f"{NOMAD}/v1/job/{PROBE_JOB}").status == 404, "the probe job was left behind"


def test_anonymous_consul_sees_no_service():
    anon = run("consul", "catalog", "services", check=False, anonymous=True)
    assert anon.returncode != 0 or anon.stdout.strip() == "", \
        f"anonymous consul catalog services listed: {anon.stdout!r}"
    r = http(CONSUL + "/v1/catalog/services", anonymous=True)
    assert r.status == 403 or r.json() == {}, f"anonymous catalog: {r.status} {r.text}"
    r = http(CONSUL + "/v1/kv/counter?recurse=true", anonymous=True)
    assert r.status in (403, 404), f"anonymous KV read: {r.status}"
    # With the token: the services.
    listed = run("consul", "catalog", "services").stdout.split()
    assert {"web", "web-inc", "redis-primary", "traefik"} <= set(listed), listed


def test_token_files_are_private():
    mode = stat.S_IMODE(SECRETS.stat().st_mode)
    assert mode == 0o700, f"{SECRETS} is {oct(mode)}"
    for f in SECRETS.iterdir():
        mode = stat.S_IMODE(f.stat().st_mode)
        assert mode == 0o600, f"{f} is {oct(mode)}"
    # The rendered configs: several hold a token or a password (the agents',
    # the Redis replication and Sentinel passwords).
    configs = [f for f in (SECRETS.parent / "etc").rglob("*") if f.is_file() and f.name != ".layout"]
    assert len(configs) >= 10, configs
    for f in configs:
        mode = stat.S_IMODE(f.lstat().st_mode)
        assert mode == 0o600, f"{f} is {oct(mode)}"


@pytest.mark.skipif(os.geteuid() != 0, reason="the allocation directories move out of the state only when started as root")
def test_only_root_and_the_task_users_reach_the_allocation_directories():
    alloc = Path(os.environ.get("COUNTER_TASK_ROOT") or "/var/lib/counter-local") / "alloc"
    st = alloc.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o710), f"{alloc}: uid {st.st_uid}, {oct(st.st_mode)}"
    assert st.st_gid == grp.getgrnam(TASK_GROUP).gr_gid, f"{alloc} is not group {TASK_GROUP}"
    assert set(TASK_USERS.values()) <= set(grp.getgrnam(TASK_GROUP).gr_mem)


def test_no_secret_on_a_command_line_or_in_a_job_spec():
    secrets = tokens()
    ps = subprocess.run(["ps", "-eo", "pid,user,args", "--width", "100000"],
                        capture_output=True, text=True, check=True).stdout
    for name, value in secrets.items():
        assert value not in ps, f"the token of {name} appears in ps output"
    for job in ("traefik", "web", "web-inc", "autoscaler"):
        spec = run("nomad", "job", "inspect", job).stdout
        for name, value in secrets.items():
            assert value not in spec, f"the token of {name} appears in the job spec of {job}"


def listening_pid(port):
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
    m = re.search(r"pid=(\d+)", out)
    assert m, f"no process found listening on {port}: {out!r}"
    return int(m.group(1))


def proc_uid(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return [int(x) for x in line.split()[1:]]
    raise AssertionError(f"no Uid line for pid {pid}")


def task_pids():
    """{job: [pid, ...]} of the running tasks, found by the ports they listen on."""
    ports = {"traefik": [8080]}
    for svc in ("web", "web-inc"):
        r = http(f"{CONSUL}/v1/health/service/{svc}?passing")
        assert r.status == 200, r.text
        ports[svc] = [entry["Service"]["Port"] for entry in r.json()]
    autoscaler = [a for a in http(f"{NOMAD}/v1/job/autoscaler/allocations").json() if a["ClientStatus"] == "running"]
    assert autoscaler, "the autoscaler job runs no allocation"
    alloc = http(f"{NOMAD}/v1/allocation/{autoscaler[0]['ID']}").json()
    ports["autoscaler"] = [p["Value"] for p in alloc["AllocatedResources"]["Shared"]["Ports"] if p["Label"] == "http"]
    assert len(ports["web"]) >= 2 and ports["web-inc"] and ports["autoscaler"], ports
    return {job: [listening_pid(port) for port in job_ports] for job, job_ports in ports.items()}


@pytest.mark.skipif(os.geteuid() != 0, reason="the stack runs tasks as their users only when started as root")
def test_each_jobs_tasks_run_as_its_own_unprivileged_user():
    for job, pids in task_pids().items():
        uid = pwd.getpwnam(TASK_USERS[job]).pw_uid
        assert uid != 0
        for pid in pids:
            real, effective, saved, fs = proc_uid(pid)
            assert real == effective == saved == fs == uid, \
                f"{job} (pid {pid}) runs as uids {real, effective, saved, fs}, not {TASK_USERS[job]} ({uid})"


@pytest.mark.skipif(os.geteuid() != 0, reason="the stack runs tasks as their users only when started as root")
def test_a_compromised_web_cannot_read_another_jobs_environment():
    """Code running as web's user (what a flaw in web would give) reads no
    secret of web-inc, Traefik or the autoscaler from /proc/PID/environ, and
    can signal none of them; as web-inc's own user the same read works (the
    check can fail)."""
    pids = task_pids()
    as_web = ["runuser", "-u", TASK_USERS["web"], "--"]
    for job in ("web-inc", "traefik", "autoscaler"):
        for pid in pids[job]:
            read = subprocess.run([*as_web, "cat", f"/proc/{pid}/environ"], capture_output=True)
            assert read.returncode != 0 and not read.stdout, f"web's user read the environment of {job} (pid {pid})"
            signal = subprocess.run([*as_web, "kill", "-0", str(pid)], capture_output=True)
            assert signal.returncode != 0, f"web's user may signal {job} (pid {pid})"
    own = subprocess.run(["runuser", "-u", TASK_USERS["web-inc"], "--", "cat", f"/proc/{pids['web-inc'][0]}/environ"],
                         capture_output=True)
    assert own.returncode == 0 and b"COUNTER_" in own.stdout


# The variables a secret would be in, were it handed to a task that way.
SECRET_VARIABLES = ("CONSUL_TOKEN", "CONSUL_HTTP_TOKEN", "NOMAD_TOKEN", "COUNTER_REDIS_PASSWORD", "REDIS_PASSWORD")
# Each job's secret files in its task's secrets dir (nomad/*.nomad.hcl).
SECRET_FILES = {"web": ["redis-password", "consul-token"], "web-inc": ["redis-password", "consul-token"],
                "traefik": ["consul-token"], "autoscaler": ["autoscaler.hcl", "nomad_token"],
                "exporters": ["redis-passwords.json"], "prometheus": ["consul.token"]}


def every_task_pid():
    """task_pids() and the exporters' and Prometheus' (by their ports)."""
    return {**task_pids(), "exporters": [listening_pid(9121)], "prometheus": [listening_pid(9090)]}


@pytest.mark.skipif(os.geteuid() != 0, reason="the stack runs tasks as their users only when started as root")
def test_no_tasks_environment_holds_a_secret():
    """Secrets reach the tasks as files only: read as root, which reads any
    /proc/PID/environ, no task's environment has a token or a password, in a
    variable of the usual names or anywhere."""
    secrets = tokens()
    for job, pids in every_task_pid().items():
        for pid in pids:
            raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
            env = dict(entry.split("=", 1) for entry in raw.split("\0") if "=" in entry)
            assert env.get("NOMAD_JOB_NAME") == job, f"pid {pid} is not a task of {job}: {sorted(env)}"
            held = sorted(name for name in SECRET_VARIABLES if env.get(name))
            assert not held, f"{job} (pid {pid}) has {held} in its environment"
            for name, value in secrets.items():
                assert value not in raw, f"the secret {name} is in the environment of {job} (pid {pid})"


@pytest.mark.skipif(os.geteuid() != 0, reason="the stack runs tasks as their users only when started as root")
def test_each_tasks_secret_files_are_readable_by_its_user_alone():
    """Each job's secret files (Redis password, Consul or Nomad token) are
    its user's, no one else's: every other job's user fails to read them,
    its own reads them (the check can fail)."""
    pids = every_task_pid()
    for job, names in SECRET_FILES.items():
        # raw_exec runs a task in its task directory.
        secrets_dir = Path(os.readlink(f"/proc/{pids[job][0]}/cwd")) / "secrets"
        owner = pwd.getpwnam(TASK_USERS[job])
        for name in names:
            f = secrets_dir / name
            st = f.stat()
            assert st.st_uid == owner.pw_uid and not st.st_mode & 0o077, \
                f"{f}: uid {st.st_uid}, mode {oct(stat.S_IMODE(st.st_mode))}; want {owner.pw_name}'s alone"
            for other_job, user in TASK_USERS.items():
                read = subprocess.run(["runuser", "-u", user, "--", "cat", str(f)], capture_output=True)
                if other_job == job:
                    assert read.returncode == 0 and read.stdout.strip(), f"{user} cannot read its own {f}"
                else:
                    assert read.returncode != 0 and not read.stdout, f"{user} read {job}'s {f}"


@pytest.mark.parametrize("user", ["root", pytest.param(None, marks=pytest.mark.skipif(
    os.geteuid() != 0, reason="a task naming no user runs as the agent's user, root only when started as root"))])
def test_a_task_asking_for_root_is_refused(tmp_path, user):
    """`user = "root"`, or no user at all: the task would run as the agent's
    user, root, which Nomad 1.11's raw_exec checks the same way."""
    job = write_job(tmp_path, ROOT_JOB, user=user)
    try:
        run("nomad", "job", "run", "-detach", job)

        def failed_alloc():
            allocs = http(f"{NOMAD}/v1/job/{ROOT_JOB}/allocations").json()
            for a in allocs:
                if a["ClientStatus"] == "failed":
                    return a
                assert a["ClientStatus"] != "complete", "the task ran as root and completed"
            return None

        alloc = wait_for("the root task's allocation to fail", failed_alloc, timeout=60)
        detail = http(f"{NOMAD}/v1/allocation/{alloc['ID']}").json()
        events = [e.get("DisplayMessage", "") + " " + e.get("DriverError", "")
                  for e in detail["TaskStates"]["probe"]["Events"]]
        assert any("running as uid 0 is disallowed" in e for e in events), events
    finally:
        purge(ROOT_JOB)


def as_another_local_account(*argv):
    """A command as `nobody` (as root), or as this unprivileged user: a local
    account that holds none of the stack's secrets."""
    prefix = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
    return subprocess.run(prefix + list(argv), capture_output=True, text=True, timeout=10)


@pytest.mark.parametrize("port,command", [(6380, ["FLUSHALL"]), (6381, ["REPLICAOF", "127.0.0.1", "9"]),
                                          (6380, ["SET", "counter", "0"]), (26380, ["SENTINEL", "RESET", "*"])])
def test_another_local_account_cannot_touch_the_count_or_the_topology(port, command):
    def state():
        """The count and each node's role (a replica's with its primary)."""
        with redis(6380) as a, redis(6381) as b:
            return a.call("GET", "counter"), [r[:3] if r[0] == "slave" else r[:1] for r in (a.call("ROLE"),
                                                                                            b.call("ROLE"))]

    before = state()
    out = as_another_local_account("redis-cli", "-p", str(port), *command)
    assert "NOAUTH" in out.stdout + out.stderr, f"{command} on :{port} as another account: {out.stdout}{out.stderr}"
    assert state() == before


def test_a_service_user_cannot_do_what_it_does_not_need():
    """web may only read the count: FLUSHALL, REPLICAOF and INCR are NOPERM for it."""
    web = target.local().redis("127.0.0.1", 6380, user="web")
    for command in (["FLUSHALL"], ["REPLICAOF", "127.0.0.1", "9"], ["INCR", "counter"]):
        with pytest.raises(RedisError, match="NOPERM"):
            web.call(*command)
    web.close()


def test_the_metrics_user_reads_sentinels_view_and_can_change_nothing():
    """The exporter's user on Sentinel (redis/sentinel.conf.j2): SENTINEL
    MASTERS answers, FAILOVER, RESET and SET are NOPERM."""
    t = target.local()
    as_metrics = Redis("127.0.0.1", 26380, t.secret("redis-metrics.password"), "metrics", None, 2.0)
    assert "counter" in as_metrics.call("SENTINEL", "MASTERS")[0]
    for command in (["SENTINEL", "FAILOVER", "counter"], ["SENTINEL", "RESET", "*"],
                    ["SENTINEL", "SET", "counter", "quorum", "9"], ["SENTINEL", "REMOVE", "counter"]):
        with pytest.raises(RedisError, match="NOPERM"):
            as_metrics.call(*command)
    as_metrics.close()


def test_web_inc_may_add_one_at_a_time_but_never_lower_or_set_the_count():
    """web-inc's user has INCR, never INCRBY, DECR or SET: the count only goes up, by one."""
    web_inc = target.local().redis("127.0.0.1", 6380, user="web-inc")
    for command in (["INCRBY", "counter", "-1000"], ["DECR", "counter"], ["SET", "counter", "0"],
                    ["DEL", "counter"]):
        with pytest.raises(RedisError, match="NOPERM"):
            web_inc.call(*command)
    web_inc.close()
