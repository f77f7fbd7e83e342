"""Hosts come and go: one added to the inventory joins on the next deploy
(Consul, Nomad, Redis replica, gateway; the Sentinels stay the servers' three)
and web spreads onto it;
`scripts/cluster remove` (scripts/deploy remove-host) takes it out again
under load with no failed request and no acknowledged increment lost."""

import json
import os
import subprocess
import sys
import tempfile

from cluster import REPO, Cluster, eventually, http, run

from counterops.chaos.verdict import verdict


def test_an_added_host_joins_and_web_spreads_onto_it(cluster):
    n = len(cluster.hosts) + 1
    run([str(REPO / "scripts/cluster"), "up", "--machines", str(n)], timeout=1500)
    grown = Cluster()
    new = grown.hosts[-1]
    assert len(grown.hosts) == n
    eventually(lambda: any(m["Name"] == new and m["Status"] == 1 for m in grown.consul_api("/v1/agent/members")),
               60, f"{new} a Consul member")
    assert any(node["Name"] == new and node["Status"] == "ready" for node in grown.nomad_api("/v1/nodes"))
    # The deploy sizes web to one per host, so one lands on the new host and
    # passes its checks; at idle the autoscaler may trim web back to its
    # minimum (3) afterwards, from any host.
    placed = [a for a in grown.nomad_api("/v1/job/web/allocations")
              if a["NodeName"] == new and (a.get("DeploymentStatus") or {}).get("Healthy")]
    assert placed, "no healthy web allocation was placed on the new host"
    info = grown.redis_cli(grown.primary(), "INFO", "replication")
    assert f"connected_slaves:{n - 1}" in info, info
    def sentinels_see_the_new_replica():
        reply = grown.sentinel_cli(grown.servers[0], "SENTINEL", "master", "counter")
        return f"num-slaves\n{n - 1}" in reply and f"num-other-sentinels\n{len(grown.servers) - 1}" in reply
    eventually(sentinels_see_the_new_replica, 30, "the Sentinels see the new replica, and no new Sentinel")
    assert grown.ssh(new, "systemctl is-active counter-sentinel", check=False).stdout.strip() != "active"
    status, body = http(grown.gateway(new) + "/")
    assert status == 200 and body.strip().isdigit(), body


def test_a_host_is_removed_under_load_without_a_failed_request(cluster):
    grown = Cluster()
    leaving = grown.hosts[-1]
    assert leaving not in grown.servers
    gateways = [grown.gateway(h) for h in grown.hosts if h != leaving]
    primary = grown.primary()
    initial = int(grown.redis_cli(primary, "GET", "counter") or 0)
    with tempfile.TemporaryDirectory() as tmp:
        stop, out_path = os.path.join(tmp, "stop"), os.path.join(tmp, "load.json")
        with open(out_path, "w") as out:
            # Bounded: 300 s at most, and ended as soon as the removal is done.
            load = subprocess.Popen([sys.executable, "-m", "counterops.chaos.load", "--duration", "300",
                                     "--stop-file", stop, *gateways], stdout=out, text=True)
            try:
                run([str(REPO / "scripts/cluster"), "remove", leaving], timeout=600)
            finally:
                open(stop, "w").close()
                load.wait(timeout=60)
        with open(out_path) as f:
            result = json.load(f)
    shrunk = Cluster()
    assert leaving not in shrunk.hosts
    final = int(shrunk.redis_cli(shrunk.primary(), "GET", "counter"))
    line, problems = verdict("remove-host", result, initial, final, 0)
    # Which host held the primary when the removal began: a clean-clone CI
    # run once had reads and writes pause 1.4 s here, with GET 503s, as at a
    # primary change (docs/chaos.md); this says whether one happened.
    where = f" (primary before: {primary}, now: {shrunk.primary()}; removed: {leaving})"
    print(line + where)
    assert not problems, line + str(problems) + where
    assert result["get_errors"] == 0 and result["inc_errors"] == 0, line + str(result.get("error_kinds")) + where
    assert len(result["acked"]) > 0 and result["get_ok"] > 0
    assert not any(m["Name"] == leaving and m["Status"] == 1 for m in shrunk.consul_api("/v1/agent/members"))
    assert leaving not in [n["Name"] for n in shrunk.nomad_api("/v1/nodes")]
    sentinel = shrunk.sentinel_cli(shrunk.servers[0], "SENTINEL", "master", "counter")
    assert f"num-slaves\n{len(shrunk.hosts) - 1}" in sentinel, sentinel
