"""Machines come back like real hosts: one rebooted hard (a power cut, then a
boot) returns by itself with every unit active and its allocations running,
and the primary's machine, off for 20 s under load and booted again, loses
no acknowledged increment and returns as a replica."""

import re

from cluster import REPO, eventually, run


def test_a_machine_rebooted_hard_comes_back_by_itself(cluster):
    host = next(h for h in reversed(cluster.hosts) if h != cluster.primary())
    run([str(REPO / "scripts/cluster"), "reboot", host, "--hard"], timeout=300)

    def back():
        units = cluster.ssh(host, "systemctl is-active consul nomad counter-redis-role-watch 'counter-redis@*'",
                            check=False).stdout.split()
        serving = {e["Service"]["Service"] for name in ("traefik", "web")
                   for e in cluster.consul_api(f"/v1/health/service/{name}?passing") if e["Node"]["Node"] == host}
        status = run([str(REPO / "scripts/status"), "--cluster", "--interval", "0.5"], check=False)
        assert units == ["active"] * 4 and serving == {"traefik", "web"} and status.returncode == 0, \
            (units, serving, status.stdout[-3000:])
        return True
    eventually(back, 120, f"{host} back: every unit active, traefik and web passing there, scripts/status exit 0")


def test_the_primarys_machine_off_and_back_under_load_loses_nothing_and_returns_as_a_replica(cluster):
    before = cluster.primary()
    p = run([str(REPO / "scripts/chaos"), "primary-return"], check=False, timeout=600)
    print(p.stdout, p.stderr[-3000:])
    assert p.returncode == 0, p.stdout + p.stderr[-3000:]
    assert re.search(r"^chaos primary-return: .* lost=0 ", p.stdout, re.M), p.stdout
    assert "role=replica" in p.stdout
    assert cluster.primary() != before
    assert cluster.redis_cli(before, "ROLE").splitlines()[0] == "slave"
