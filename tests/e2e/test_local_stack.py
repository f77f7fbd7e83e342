"""End-to-end tests of the local stack (scripts/up), through its real parts:
Traefik, Nomad, Consul, the services and Redis.

Tests never assume a fresh count: other runs and people share the stack, so
increments are checked relative to the value the test starts from.
"""

import os
import re
import signal

import pytest
from conftest import CONSUL, GATEWAY, REPO, STATE, TRAEFIK_API, get_json, http, redis, run, sentinel, wait_for

JOBS = ["traefik", "web", "web-inc"]


def count_of(response):
    assert response.status == 200, f"{response.status}: {response.text}"
    return int(response.text.strip())


# --- the reference's behaviour --------------------------------------------

def test_each_inc_adds_one_and_root_shows_the_last_value():
    first = count_of(http(GATEWAY + "/inc"))
    second = count_of(http(GATEWAY + "/inc"))
    third = count_of(http(GATEWAY + "/inc"))

    assert [second, third] == [first + 1, first + 2]
    # Reads go to a replica, yet show at least every acknowledged increment.
    assert count_of(http(GATEWAY + "/")) == first + 2


def test_post_inc_increments_the_count():
    before = count_of(http(GATEWAY + "/"))

    after = count_of(http(GATEWAY + "/inc", method="POST", data=b""))

    assert after == before + 1
    assert count_of(http(GATEWAY + "/")) == after


def test_json_is_served_when_asked_for():
    accept = {"Accept": "application/json"}

    inc = http(GATEWAY + "/inc", method="POST", headers=accept, data=b"")
    read = http(GATEWAY + "/", headers=accept)

    for r in (inc, read):
        assert r.status == 200, r.text
        assert r.headers.get_content_type() == "application/json"
    assert isinstance(inc.json()["count"], int)
    assert read.json()["count"] == inc.json()["count"]


def test_an_unknown_path_is_a_json_404():
    r = http(GATEWAY + "/no-such-page")

    assert r.status == 404
    body = r.json()
    assert set(body) >= {"error", "code"}


# --- routing -----------------------------------------------------------------

def test_traefik_routes_inc_above_the_catch_all_limited_then_retried_only_where_it_never_arrived():
    routers = {r["name"]: r for r in get_json(TRAEFIK_API + "/http/routers")}

    web, web_inc = routers["web@consulcatalog"], routers["web-inc@consulcatalog"]
    assert web["rule"] == "PathPrefix(`/`)" and web["priority"] == 10
    assert web_inc["rule"] == "PathPrefix(`/inc`)" and web_inc["priority"] == 100
    assert web_inc["priority"] > web["priority"]
    # The per-client limit first (tests/e2e/test_rate_limit.py), so a refused
    # increment is never tried; then one retry, which Traefik's standard
    # engine makes only when the request never reached an instance
    # (tests/tools/test_gateway_inc_retry.py): an increment is not idempotent.
    assert web_inc.get("middlewares") == ["web-inc-limit@consulcatalog", "web-inc-retry@consulcatalog"], \
        web_inc.get("middlewares")
    middlewares = {m["name"]: m for m in get_json(TRAEFIK_API + "/http/middlewares")}
    assert middlewares["web-inc-retry@consulcatalog"]["retry"]["attempts"] == 2


# --- Consul and Nomad --------------------------------------------------------

def test_consul_lists_the_services_and_both_redis_names():
    out = run("consul", "catalog", "services").stdout.split()

    assert {"web", "web-inc", "redis-primary", "redis-replica"} <= set(out)


def test_exactly_one_redis_instance_passes_as_primary_and_one_as_replica():
    primaries = get_json(CONSUL + "/v1/health/service/redis-primary?passing")
    replicas = get_json(CONSUL + "/v1/health/service/redis-replica?passing")

    assert len(primaries) == 1 and len(replicas) == 1
    primary_port = primaries[0]["Service"]["Port"]
    replica_port = replicas[0]["Service"]["Port"]
    assert {primary_port, replica_port} == {6380, 6381}
    # And Redis agrees with Consul.
    with redis(primary_port) as p, redis(replica_port) as r:
        assert (p.call("ROLE")[0], r.call("ROLE")[0]) == ("master", "slave")


def test_sentinel_runs_with_the_timers_its_unit_sets():
    # scripts/up runs the unit's ExecStartPost as systemd would.
    unit = (REPO / "systemd" / "counter-sentinel.service").read_text()
    words = next(ln for ln in unit.splitlines() if ln.startswith("ExecStartPost=")).split()[2:]
    want = {name.upper(): value for name, value in zip(words[::2], words[1::2])}
    with sentinel() as s:
        reply = s.call("SENTINEL", "DEBUG")
    got = dict(zip(reply[::2], map(str, reply[1::2])))
    assert want and {k: got.get(k) for k in want} == want, got


@pytest.mark.parametrize("job,count", [("web", 2), ("web-inc", 1)])
def test_nomad_runs_the_services(job, count):
    out = run("nomad", "job", "status", job).stdout

    assert re.search(r"^Status\s*=\s*running$", out, re.M), out
    running = [line for line in out.splitlines()
               if re.match(r"^[0-9a-f]{8}\s", line) and " run " in line and "running" in line]
    assert len(running) == count, out


@pytest.mark.parametrize("job", JOBS)
def test_planning_an_unchanged_job_shows_no_changes(job):
    var_file = STATE / "jobs" / f"{job}.vars.hcl"
    assert var_file.exists(), f"{var_file} missing: scripts/up writes it"

    p = run("nomad", "job", "plan", f"-var-file={var_file}", f"nomad/{job}.nomad.hcl", check=False)

    # Exit 0: no allocation would be created or destroyed.
    assert p.returncode == 0, p.stdout + p.stderr
    diff = p.stdout.split("Scheduler dry-run:")[0]
    changed = [line for line in diff.splitlines() if re.match(r"^\s*(\+/-|\+|-)\s", line)]
    scaled = job in ("web", "web-inc", "autoscaler")  # the jobs with a scaling block
    if scaled:
        # Nomad compares a job with a scaling block including the indexes it
        # stored on the policy, which a submitted job never has: the plan
        # always lists the policy as edited, with no field changed in it, and
        # an in-place update (no allocation replaced). Only that is allowed.
        assert re.search(rf'^\+/- Task Group: "{job}" \(\d+ in-place update\)$', diff, re.M) or not changed, diff
        changed = [line for line in changed
                   if not re.match(rf'^(\+/- Job: "{job}"|\+/- Task Group: "{job}" .*|\s*\+/- Scaling \{{)$', line)]
    assert changed == [], diff
    assert re.search(rf'^(\+/- )?Job: "{job}"$' if scaled else rf'^Job: "{job}"$', diff, re.M), diff


# --- readiness gates routing ----------------------------------------------

def web_servers():
    service = http(TRAEFIK_API + "/http/services/web@consulcatalog")
    if service.status != 200:
        return set()
    return {s["url"] for s in service.json().get("loadBalancer", {}).get("servers", [])}


def pid_listening_on(port):
    out = run("ss", "-Hltnp", f"sport = :{port}").stdout
    m = re.search(r"pid=(\d+)", out)
    assert m, f"no process found listening on {port}: {out!r}"
    return int(m.group(1))


def test_traefik_stops_routing_to_an_unready_instance_and_resumes_when_it_recovers():
    servers = wait_for("two web servers in Traefik", lambda: len(web_servers()) == 2 and web_servers())
    victim = sorted(servers)[0]
    pid = pid_listening_on(int(victim.rsplit(":", 1)[1]))

    # A stopped process cannot answer its readiness check: Consul marks it
    # critical after the 1 s timeout and Traefik drops it.
    os.kill(pid, signal.SIGSTOP)
    try:
        remaining = wait_for("Traefik to drop the stopped instance",
                             lambda: (s := web_servers()) and victim not in s and s)
        assert len(remaining) == 1
        statuses = [http(GATEWAY + "/").status for _ in range(20)]
        assert statuses == [200] * 20
    finally:
        os.kill(pid, signal.SIGCONT)

    wait_for("Traefik to route to the instance again", lambda: victim in web_servers())
    assert len(web_servers()) == 2


def web_inc_servers():
    service = http(TRAEFIK_API + "/http/services/web-inc@consulcatalog")
    if service.status != 200:
        return set()
    return {s["url"] for s in service.json().get("loadBalancer", {}).get("servers", [])}


def test_with_no_ready_instance_the_gateway_answers_503_with_retry_after_not_404():
    (only,) = wait_for("one web-inc server in Traefik", lambda: len(web_inc_servers()) == 1 and web_inc_servers())
    pid = pid_listening_on(int(only.rsplit(":", 1)[1]))
    before = int(http(GATEWAY + "/").text.strip())

    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for("Traefik to drop the only web-inc instance", lambda: not web_inc_servers())
        r = http(GATEWAY + "/inc", method="POST")
        assert r.status == 503, (r.status, r.text)
        assert r.headers.get("Retry-After") == "1"
        assert http(GATEWAY + "/").status == 200, "reads are unaffected"
    finally:
        os.kill(pid, signal.SIGCONT)

    wait_for("Traefik to route to web-inc again", lambda: web_inc_servers() == {only})
    after = int(http(GATEWAY + "/inc").text.strip())
    assert after == before + 1, "the refused increment was never counted"


def test_metrics_and_health_are_not_served_through_the_gateway():
    # They answer on each instance's own address (Nomad's port), not publicly.
    for path in ("/metrics", "/health/ready", "/health/live"):
        r = http(GATEWAY + path)

        assert r.status == 404, f"{path}: {r.status} {r.text}"
        assert r.json()["code"] == "not_found", r.text
        assert "counter_http_requests_total" not in r.text
