"""The cluster suite: scripts/cluster up makes the test machines and deploys
this checkout onto them over SSH (scripts/deploy); the tests run against
them; scripts/cluster down removes them at the end, whatever happened.
CLUSTER_MACHINES (default 3) sets how many machines.
"""

import os
import subprocess

import pytest
from cluster import REPO, Cluster


@pytest.fixture(scope="session")
def cluster():
    machines = os.environ.get("CLUSTER_MACHINES", "3")
    up = subprocess.run([str(REPO / "scripts/cluster"), "up", "--machines", machines], text=True)
    try:
        assert up.returncode == 0, "scripts/cluster up failed (its output is above)"
        yield Cluster()
    finally:
        if os.environ.get("CLUSTER_KEEP") != "1":
            subprocess.run([str(REPO / "scripts/cluster"), "down"], text=True)
