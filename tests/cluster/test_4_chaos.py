"""The chaos scenarios of every run (scripts/chaos has more): each one's
load through the gateways must lose no acknowledged increment. machine-loss
comes last: it leaves the cluster a host short. Afterwards, failovers and
redeploys have written no secret anywhere either."""

import os

import pytest

from cluster import REPO, run
from test_2_security import logs, process_lists, scan

SCENARIOS = os.environ.get("CLUSTER_CHAOS", "primary-kill,rolling-deploy,machine-loss").split(",")


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s])
def test_chaos_scenario_loses_no_acknowledged_increment(cluster, scenario):
    p = run([str(REPO / "scripts/chaos"), scenario], check=False, timeout=600)
    print(p.stdout, p.stderr[-3000:])
    assert p.returncode == 0, p.stdout + p.stderr[-3000:]
    assert "lost=0" in p.stdout


def test_after_chaos_no_secret_in_process_lists_or_logs(cluster):
    alive = [h for h in cluster.hosts if cluster.ssh(h, "true", check=False).returncode == 0]
    cluster.hosts = alive
    assert scan(process_lists(cluster)) > 50
    assert scan(logs(cluster)) > 100
