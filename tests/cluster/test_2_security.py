"""The secured cluster: default-deny ACLs in Consul and Nomad, Redis users
with least privilege, secrets that reach tasks through Nomad Variables as
files their job's user alone reads, and never a process list, a task's
environment, a log, a job spec or the repository."""

import subprocess
import sys

from cluster import INVENTORY, REDIS_CA, REPO, eventually, http, lines_with_secret, run, secret_values

from counterops import render


def test_jobs_templates_read_their_runtime_settings_with_their_workload_identities(cluster):
    cluster.consul("kv", "put", "counter/config/all/COUNTER_LOG_LEVEL", "info")
    try:
        for job in ("web", "web-inc"):
            for alloc in cluster.running_allocs(job):
                def rendered(alloc=alloc, job=job):
                    out = cluster.nomad("alloc", "fs", alloc["ID"], f"{job}/local/runtime.env", check=False).stdout
                    return "COUNTER_LOG_LEVEL=info" in out.splitlines()
                eventually(rendered, 20, f"{job} allocation {alloc['ID'][:8]} renders the KV setting")
    finally:
        cluster.consul("kv", "delete", "counter/config/all/COUNTER_LOG_LEVEL")


def test_consul_without_a_token_sees_no_service_and_is_refused_info(cluster):
    services = cluster.consul("catalog", "services", check=False, tokens=False).stdout.split()
    assert not set(services) & {"web", "web-inc", "redis-primary", "redis-replica", "traefik"}, services
    info = cluster.consul("info", check=False, tokens=False)
    assert info.returncode != 0 and "403" in info.stderr + info.stdout
    assert "web-inc" in cluster.consul("catalog", "services").stdout.split()


def test_nomad_without_a_token_is_refused(cluster):
    out = cluster.nomad("job", "status", check=False, tokens=False)
    assert out.returncode != 0 and "403" in out.stderr + out.stdout, out.stdout + out.stderr


def test_redis_and_sentinel_refuse_a_client_without_credentials(cluster):
    for host in cluster.hosts:
        assert cluster.redis_cli(host, "GET", "counter", user=None).startswith("NOAUTH"), host
    for host in cluster.servers:
        out = run(["redis-cli", "--tls", "--cacert", str(REDIS_CA), "-h", cluster.addr[host], "-p", "26380",
                   "SENTINEL", "get-master-addr-by-name", "counter"], check=False).stdout
        assert out.startswith("NOAUTH"), f"{host} sentinel: {out}"


def test_web_may_read_the_count_but_never_write_it(cluster):
    primary = cluster.primary()
    incr = cluster.redis_cli(primary, "INCR", "counter", user="web", password_file="redis-web.password")
    get = cluster.redis_cli(primary, "GET", "counter", user="web", password_file="redis-web.password")
    # GET answers the count, or nothing while the key does not exist yet.
    assert incr.startswith("NOPERM") and (get.isdigit() or get == ""), (incr, get)


def test_web_inc_may_add_one_at_a_time_but_never_lower_or_set_the_count(cluster):
    """web-inc's Redis user has INCR and nothing that moves the count by
    more than one: a compromised web-inc cannot lower it or push it to the
    64-bit limit."""
    primary = cluster.primary()

    def as_web_inc(*command):
        return cluster.redis_cli(primary, *command, user="web-inc", password_file="redis-web-inc.password")

    for command in (["INCRBY", "counter", "-1000"], ["INCRBY", "counter", "9223372036854775000"],
                    ["DECR", "counter"], ["SET", "counter", "0"], ["DEL", "counter"], ["EVAL", "return 1", "0"]):
        assert as_web_inc(*command).startswith("NOPERM"), command
    before = int(cluster.redis_cli(primary, "GET", "counter", user="web", password_file="redis-web.password") or 0)
    after = int(as_web_inc("INCR", "counter"))
    assert after > before, (before, after)


def scan(text):
    hits = lines_with_secret(text)
    assert hits == [], f"{len(hits)} line(s) with a secret, e.g. {hits[0][:60]}..."
    return len(text.splitlines())


def process_lists(cluster):
    out = run(["ps", "-efww"]).stdout
    for host in cluster.hosts:
        out += cluster.ssh(host, "ps -efww").stdout
    return out


def logs(cluster):
    out = ""
    for host in cluster.hosts:
        out += cluster.ssh(host, "journalctl --no-pager -o cat; cat /var/lib/counter/nomad/alloc/*/alloc/logs/* 2>/dev/null",
                           check=False).stdout
    return out


def test_no_secret_in_any_process_list(cluster):
    assert scan(process_lists(cluster)) > 50


def test_no_secret_in_the_logs(cluster):
    assert scan(logs(cluster)) > 100


def test_no_secret_in_the_job_specs_or_the_agents_service_definitions(cluster):
    text = "".join(cluster.nomad("job", "inspect", job).stdout for job in ("traefik", "web", "web-inc", "autoscaler"))
    for host in cluster.hosts:
        text += cluster.ssh(host, "curl -s http://127.0.0.1:8500/v1/agent/services").stdout
        text += cluster.ssh(host, "cat /etc/counter/consul.d/consul.hcl /etc/counter/nomad.d/nomad.hcl").stdout
    assert scan(text) > 100


def test_no_secret_in_the_repository():
    text = subprocess.run(["git", "grep", "-I", "--untracked", "-h", "-e", "", "--", ".", ":!target"],
                          cwd=REPO, capture_output=True, text=True).stdout
    assert secret_values() and scan(text) > 1000


def test_each_jobs_tasks_run_as_its_own_unprivileged_user(cluster):
    users = render.settings()["counter_task_users"]
    seen = {}
    for host in cluster.hosts:
        out = cluster.ssh(host, "ps -o user:32=,comm= -C traefik,web,web-inc,nomad-autoscale").stdout
        for line in out.splitlines():
            user, comm = line.split(None, 1)
            seen.setdefault(comm, set()).add(user)
    # Every host runs traefik and web; web-inc and the autoscaler run somewhere.
    assert {"traefik", "web", "web-inc", "nomad-autoscale"} <= set(seen), seen
    want = {"traefik": users["traefik"], "web": users["web"], "web-inc": users["web-inc"],
            "nomad-autoscale": users["autoscaler"]}
    assert seen == {comm: {user} for comm, user in want.items()}, seen
    # Each job's TLS keys: its own user's group alone, and web's user, the
    # one the internet reaches, reads none of the others (the gateway's, its
    # client key to the services, web-inc's).
    keys = {"gateway": "traefik", "gateway-client": "traefik", "web": "web", "web-inc": "web-inc"}
    for host in cluster.hosts:
        for stem, job in keys.items():
            owner = cluster.ssh(host, f"stat -c '%U:%G %a' /etc/counter/tls/{stem}-key.pem").stdout.split()
            assert owner == [f"root:{users[job]}", "640"], (host, stem, owner)
            read = cluster.ssh(host, f"setpriv --reuid={users['web']} --regid={users['web']} --clear-groups "
                                     f"cat /etc/counter/tls/{stem}-key.pem", check=False)
            assert (read.returncode == 0) == (job == "web"), (host, stem, read.returncode, read.stderr)


# The variables a secret would be in, were it handed to a task that way.
SECRET_VARIABLES = ("CONSUL_TOKEN", "CONSUL_HTTP_TOKEN", "NOMAD_TOKEN", "COUNTER_REDIS_PASSWORD", "REDIS_PASSWORD")
# Each job's process name and its secret files in its task's secrets dir (nomad/*.nomad.hcl).
SECRET_FILES = {"web": ("web", ["redis-password", "consul-token"]),
                "web-inc": ("web-inc", ["redis-password", "consul-token"]),
                "traefik": ("traefik", ["consul-token"]),
                "autoscaler": ("nomad-autoscale", ["autoscaler.hcl", "nomad_token"])}


def test_secrets_reach_tasks_as_files_their_user_alone_reads_never_the_environment(cluster):
    """On every host, read as root: no task's environment holds a token or a
    password; each secret file of a task is its job's user's (mode 0400 or
    0600), and as web's user, the one the internet reaches, none of another
    job's reads (its own does: the check can fail)."""
    users = render.settings()["counter_task_users"]
    seen = set()
    for host in cluster.hosts:
        for job, (comm, names) in SECRET_FILES.items():
            for pid in cluster.ssh(host, f"pgrep -x {comm}", check=False).stdout.split():
                environ = cluster.ssh(host, f"tr '\\0' '\\n' < /proc/{pid}/environ").stdout
                env = dict(line.split("=", 1) for line in environ.splitlines() if "=" in line)
                assert env.get("NOMAD_JOB_NAME") == job, (host, comm, pid, sorted(env))
                assert not [k for k in SECRET_VARIABLES if env.get(k)], (host, job, "secret variables in environ")
                scan(environ)
                secrets_dir = cluster.ssh(host, f"readlink /proc/{pid}/cwd").stdout.strip() + "/secrets"
                for name in names:
                    f = f"{secrets_dir}/{name}"
                    owner = cluster.ssh(host, f"stat -c '%U %a' {f}").stdout.split()
                    assert owner[0] == users[job] and owner[1] in ("400", "600"), (host, f, owner)
                    read = cluster.ssh(host, f"setpriv --reuid={users['web']} --regid={users['web']} "
                                             f"--clear-groups cat {f} >/dev/null", check=False)
                    assert (read.returncode == 0) == (job == "web"), (host, f, read.returncode, read.stderr)
                seen.add(job)
    assert seen == set(SECRET_FILES), f"no running task of {set(SECRET_FILES) - seen}"


def test_the_clients_refuse_a_task_that_would_run_as_root(cluster, tmp_path):
    job = tmp_path / "as-root.nomad.hcl"
    job.write_text('''job "as-root" {
  type = "batch"
  group "g" {
    restart { attempts = 0 }
    reschedule { attempts = 0 }
    task "t" {
      driver = "raw_exec"
      user   = "root"
      config { command = "/bin/true" }
    }
  }
}
''')
    try:
        cluster.nomad("job", "run", "-detach", str(job))

        def failed():
            allocs = cluster.nomad_api("/v1/job/as-root/allocations")
            states = [a["TaskStates"]["t"] for a in allocs if a.get("TaskStates")]
            events = [e.get("DisplayMessage", "") for s in states for e in s["Events"]]
            return any("uid 0" in e for e in events) and all(a["ClientStatus"] == "failed" for a in allocs)
        eventually(failed, 60, "the as-root allocation fails with the uid 0 refusal")
    finally:
        cluster.nomad("job", "stop", "-purge", "as-root", check=False)


def test_a_changed_acl_definition_reaches_the_running_cluster(cluster, tmp_path):
    """acl.toml, applied again (as every deploy does), updates a policy's rules
    and a role's policies on a running cluster, and changes nothing when it
    matches."""
    acl = REPO / "scripts/counterops/acl.toml"
    probe = 'key_prefix "counter/e2e-probe/" { policy = "read" }'
    changed = tmp_path / "acl.toml"
    changed.write_text(acl.read_text()
                       .replace('key_prefix "counter/config/{job}/" { policy = "read" }\n',
                                'key_prefix "counter/config/{job}/" { policy = "read" }\n' + probe + "\n")
                       .replace('policies = ["counter-config-web-inc", "redis-discovery"]',
                                'policies = ["counter-config-web-inc", "redis-discovery", "gateway-catalog"]'))

    def apply(path):
        return run([sys.executable, "-m", "counterops.acl", "--inventory", str(INVENTORY), "--acl", str(path)]).stderr

    def live():
        role = cluster.consul_api("/v1/acl/role/name/nomad-tasks-web-inc")
        return cluster.consul_api("/v1/acl/policy/name/counter-config-web")["Rules"], \
            sorted(p["Name"] for p in role["Policies"])

    try:
        apply(changed)
        rules, role = live()
        assert probe in rules and "gateway-catalog" in role, (rules, role)
    finally:
        apply(acl)
    rules, role = live()
    assert probe not in rules and role == ["counter-config-web-inc", "redis-discovery"]
    assert not any(word in apply(acl) for word in ("created", "updated"))


def test_the_gateway_refuses_a_clients_increments_over_its_limit_with_429(cluster):
    """The per-client limit on /inc (counter_inc_limit_per_client; the test
    machines' inventory sets 20000 so the chaos loads pass): set to 100/s, a
    burst of 160 from this machine to one host's gateway gets a second's worth
    through and 429 + Retry-After for the rest, which count nothing."""
    import concurrent.futures
    import time
    import urllib.request

    def redeploy(limit):
        run([sys.executable, "-m", "counterops.jobs", "redeploy", "--inventory", str(INVENTORY), "--timeout", "180",
             "--set", f"inc_limit_per_client={limit}", "web-inc"], timeout=300)

    host = cluster.hosts[0]
    gateway = cluster.gateway(host)
    inventory_limit = cluster.t.settings()["counter_inc_limit_per_client"]
    redeploy(100)
    try:
        def limited():
            status, _ = http(gateway + "/inc", method="POST")
            return status == 429
        # Traefik sees the new tags within a second or two; drain the bucket until it answers 429.
        eventually(lambda: any(limited() for _ in range(150)), 30, "the gateway to apply the 100/s limit")
        time.sleep(1.1)  # a full bucket again
        before = int(http(gateway + "/")[1])
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

        def inc(_):
            try:
                with opener.open(urllib.request.Request(gateway + "/inc", method="POST"), timeout=10) as r:
                    return r.status, None
            except urllib.error.HTTPError as e:
                return e.code, e.headers.get("Retry-After")

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(inc, range(160)))
        took = time.monotonic() - started
        ok = sum(1 for s, _ in answers if s == 200)
        refused = [retry for s, retry in answers if s == 429]
        assert ok + len(refused) == 160, sorted({s for s, _ in answers})
        assert 100 <= ok <= 100 + 100 * took + 2, (ok, took)
        assert refused and set(refused) == {"1"}, refused[:3]
        assert int(http(gateway + "/")[1]) - before == ok, "a refused increment counted"
    finally:
        redeploy(inventory_limit)
