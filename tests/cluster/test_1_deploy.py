"""The deploy: every host runs its agents, Redis and gateway; one counter
through every gateway; a second deploy changes nothing; the operator tools
work on the secured cluster."""

import json
import re
import subprocess
import uuid

from cluster import REPO, deploy, eventually, http, lines_with_secret, run


def test_every_host_is_a_consul_member_and_a_ready_nomad_node(cluster):
    def members():
        alive = [m["Name"] for m in cluster.consul_api("/v1/agent/members") if m["Status"] == 1]
        return sorted(alive) == sorted(cluster.hosts)
    eventually(members, 60, f"consul members {cluster.hosts} alive")

    def nodes():
        ready = [n["Name"] for n in cluster.nomad_api("/v1/nodes") if n["Status"] == "ready"]
        return sorted(ready) == sorted(cluster.hosts)
    eventually(nodes, 60, f"nomad nodes {cluster.hosts} ready")


def test_the_servers_have_one_leader(cluster):
    peers = cluster.nomad_api("/v1/operator/raft/configuration")["Servers"]
    assert sorted(p["Node"].split(".")[0] for p in peers) == sorted(cluster.servers)
    assert sum(p["Leader"] for p in peers) == 1
    assert cluster.consul_api("/v1/status/peers") and len(cluster.consul_api("/v1/status/peers")) == len(cluster.servers)


def test_every_host_runs_redis_consul_and_nomad_and_the_servers_a_sentinel(cluster):
    for host in cluster.hosts:
        out = cluster.ssh(host, "systemctl is-active 'counter-redis@*' counter-redis-role-watch consul nomad "
                                "counter-sentinel", check=False).stdout.split()
        sentinel = "active" if host in cluster.servers else "inactive"
        assert out == ["active"] * 4 + [sentinel], f"{host}: {out}"


def unit_sentinel_timers():
    """{NAME: ms} from counter-sentinel.service's ExecStartPost line."""
    unit = (REPO / "systemd" / "counter-sentinel.service").read_text()
    line = next(ln for ln in unit.splitlines() if ln.startswith("ExecStartPost=") and "counter-sentinel-timers" in ln)
    words = line.split()[2:]  # after the program and the config file
    return {name.upper(): value for name, value in zip(words[::2], words[1::2])}


def sentinel_timers(cluster, host):
    words = cluster.sentinel_cli(host, "SENTINEL", "DEBUG").split()
    return dict(zip(words[::2], words[1::2]))


def test_every_sentinel_runs_with_the_units_timers_even_after_a_restart(cluster):
    want = unit_sentinel_timers()
    assert set(want) == {"PING-PERIOD", "INFO-PERIOD"}, want
    for host in cluster.servers:
        got = sentinel_timers(cluster, host)
        assert {k: got.get(k) for k in want} == want, f"{host}: {got}"
    # SENTINEL DEBUG does not outlive the process: the unit sets it again.
    host = cluster.servers[-1]
    cluster.ssh(host, "systemctl restart counter-sentinel")
    got = sentinel_timers(cluster, host)
    assert {k: got.get(k) for k in want} == want, f"{host} after a restart: {got}"
    eventually(lambda: "num-other-sentinels\n%d" % (len(cluster.servers) - 1)
               in cluster.sentinel_cli(host, "SENTINEL", "master", "counter"), 30,
               f"{host}'s Sentinel knows the others again")


def role_checks(cluster, host):
    """The Redis role checks held by host's Consul agent: {check id: check}."""
    return {c["CheckID"]: c for c in cluster.consul_api(f"/v1/health/node/{host}") if c["CheckID"].endswith("-role")}


def test_the_role_checks_follow_the_role_watch_and_expire_without_it(cluster):
    host = cluster.hosts[1]
    checks = role_checks(cluster, host)
    # Its own Redis and its ring neighbour's, as primary and as replica.
    assert len(checks) == 4 and all(c["Type"] == "ttl" for c in checks.values()), checks
    assert sum(c["Status"] == "passing" for c in checks.values()) == 2, checks
    primary = cluster.primary()
    cluster.ssh(host, "systemctl stop counter-redis-role-watch")
    try:
        eventually(lambda: all(c["Status"] == "critical" for c in role_checks(cluster, host).values()), 20,
                   f"{host}'s role checks expired after its role watch stopped")
        # The primary's other registration (on another host's agent) still names it.
        assert cluster.primary() == primary
    finally:
        cluster.ssh(host, "systemctl start counter-redis-role-watch")
    eventually(lambda: sum(c["Status"] == "passing" for c in role_checks(cluster, host).values()) == 2, 20,
               f"{host}'s role checks passing again with the role watch back")


def test_web_runs_on_distinct_hosts_one_per_host(cluster):
    nodes = [a["NodeName"] for a in cluster.running_allocs("web")]
    assert len(nodes) == len(set(nodes)) >= 3, f"web on {nodes}"


def test_the_primary_has_every_other_host_as_a_connected_replica(cluster):
    info = cluster.redis_cli(cluster.primary(), "INFO", "replication")
    assert f"connected_slaves:{len(cluster.hosts) - 1}" in info, info


def test_one_counter_through_every_gateway(cluster):
    status, body = http(cluster.gateway(cluster.hosts[0]) + "/")
    assert status == 200, body
    start = int(body)
    for i, host in enumerate(cluster.hosts, 1):
        status, body = http(cluster.gateway(host) + "/inc", timeout=10)
        assert (status, body.strip()) == (200, str(start + i)), f"/inc via {host}"
    for host in cluster.hosts:
        status, body = http(cluster.gateway(host) + "/")
        assert (status, body.strip()) == (200, str(start + len(cluster.hosts))), f"GET / via {host}"


def test_a_request_id_is_found_across_the_hosts_by_scripts_logs(cluster):
    # The gateway logs failed and slow requests only (docs/benchmarks.md): a
    # traced success is the service's line; a 404 is in both logs.
    host = cluster.hosts[1]
    ok_id, missing_id = (f"cluster-test-{uuid.uuid4().hex[:12]}" for _ in range(2))
    req = subprocess.run(["curl", "-sf", "--max-time", "5", "-o", "/dev/null", "-w", "%header{x-served-by}",
                          "-H", f"X-Request-Id: {ok_id}", cluster.gateway(host) + "/inc"], capture_output=True, text=True)
    assert req.returncode == 0, req.stderr
    served = req.stdout.strip()
    status, _ = http(cluster.gateway(host) + "/no-such-page", headers={"X-Request-Id": missing_id})
    assert status == 404

    def lines(rid):
        return run([str(REPO / "scripts/logs"), "--cluster", "--request-id", rid], check=False).stdout.splitlines()

    def found():
        ok = any(f" {served} info answered " in line and f"request_id={ok_id}" in line for line in lines(ok_id))
        missing = lines(missing_id)
        access = any(" access GET /no-such-page 404 " in line and f"id={missing_id}" in line for line in missing)
        service = any(" info answered " in line and f"request_id={missing_id}" in line for line in missing)
        return ok and access and service
    eventually(found, 30, f"{ok_id} in {served}'s log; {missing_id} in the access log and web's log")


def test_status_shows_the_days_left_of_every_certificate_the_hosts_serve(cluster):
    out = run([str(REPO / "scripts/status"), "--cluster"], check=False).stdout
    section = out[out.index("== certificates"):out.index("== alerts")]
    rows = [line.split() for line in section.splitlines()[2:] if line.strip()]
    # Then the alerts of the cluster's Prometheus, found in Consul's catalog.
    assert re.search(r"^== alerts \(http://198\.18\.[0-9.]+:9090\)", out, re.M), out[out.index("== alerts"):]
    seen = {(r[0], r[1]) for r in rows}
    want = {(h, what) for h in cluster.hosts for what in ("consul", "nomad", "redis", "gateway")}
    want |= {(h, "sentinel") for h in cluster.servers}
    assert want <= seen, section
    # Two-year leaves of a cluster deployed today; each role's CA ten years; no warning.
    assert {r[1] for r in rows if r[0] == "-"} == {"consul", "nomad", "redis", "gateway", "services"}, section
    for r in rows:
        days = int(r[-1]) if r[-1].isdigit() else None
        assert days is not None and days >= (3600 if r[0] == "-" else 700), f"{r}\n{section}"


def test_status_shows_one_primary_and_the_replicas_with_their_lag(cluster):
    out = run([str(REPO / "scripts/status"), "--cluster"], check=False).stdout
    redis = out[out.index("== redis"):out.index("== certificates")]
    rows = [line.split() for line in redis.splitlines() if line.split()[:1] and line.split()[0] in cluster.hosts]
    roles = [r[2] for r in rows if len(r) > 3]
    assert roles.count("primary") == 1, redis
    assert roles.count("replica") == len(cluster.hosts) - 1, redis
    for r in rows:
        if len(r) > 3 and r[2] == "replica":
            assert r[3].endswith("B"), f"replica row without a lag in bytes: {r}"
    # Every Sentinel (one a server) answers (over TLS, with its password) and
    # runs its unit's timers.
    assert re.search(r"^sentinels \(%d\): primary [0-9.]+:6380; ping-period 250 ms, info-period 600 ms$"
                     % len(cluster.servers), redis, re.M), redis


def test_a_second_deploy_changes_nothing_and_logs_no_secret(cluster):
    p, recap = deploy("--no-build")
    assert set(recap) >= set(cluster.hosts), recap
    changed = {host: counts["changed"] for host, counts in recap.items() if counts.get("changed")}
    assert not changed, f"changed on a second run: {changed}\n{p.stdout[-4000:]}"
    assert all(counts.get("failed", 0) == 0 for counts in recap.values()), recap
    assert lines_with_secret(p.stdout + p.stderr) == []


def test_the_deploy_path_never_reaches_into_a_machine():
    deploy_path = ["deploy/", "scripts/deploy"] + [f"scripts/counterops/{m}.py" for m in (
        "control", "acl", "jobs", "secrets", "certs", "remove_host", "target", "client")]
    out = subprocess.run(["grep", "-rln", r"nsenter\|machinectl\|systemd-run", *deploy_path],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 1, f"grep failed or found a machine-only tool: {out.stdout}{out.stderr}"
    assert out.stdout == "", f"the deploy uses a machine-only tool: {out.stdout}"


def test_the_autoscaler_job_reads_webs_policy_through_its_workload_identity(cluster):
    alloc = cluster.running_allocs("autoscaler")[0]
    port = cluster.nomad_api(f"/v1/allocation/{alloc['ID']}")["AllocatedResources"]["Shared"]["Ports"][0]["Value"]

    def evaluating():
        out = cluster.ssh(alloc["NodeName"], f"curl -sf 127.0.0.1:{port}/v1/metrics").stdout
        metrics = json.loads(out)
        policies = [g["Value"] for g in metrics["Gauges"] if g["Name"].endswith(".policy.total_num")]
        evaluated = [s for s in metrics["Samples"] if s["Name"] == "nomad-autoscaler.scale.evaluate_ms"]
        return policies == [1.0] and evaluated
    eventually(evaluating, 60, "the autoscaler holds web's policy and evaluates it")
