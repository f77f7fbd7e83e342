"""scripts/local.sh's link_configs: the local stack's /etc/counter is rebuilt
from links to the checkout that runs scripts/up, even when the links it
finds point into a checkout that has since been deleted or moved (a clean
clone made for a test run, removed afterwards). Run in a scratch
COUNTER_CACHE, so the real local stack's state is not touched."""

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_local_sh(cache: Path, script: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COUNTER_CACHE": str(cache), "COUNTER_STATE": str(cache / "local"),
           "COUNTER_TASK_ROOT": str(cache / "task-root")}
    return subprocess.run(["bash", "-c", f'set -euo pipefail; . "{REPO}/scripts/local.sh"; {script}'],
                          env=env, capture_output=True, text=True, timeout=60)


def test_links_into_a_deleted_checkout_are_replaced(tmp_path):
    gone = tmp_path / "deleted-checkout"
    etc = tmp_path / "local" / "etc"
    for sub, name in (("consul.d", "consul/local.hcl"), ("nomad.d", "nomad/local.hcl")):
        (etc / sub).mkdir(parents=True)
        (etc / sub / "local.hcl").symlink_to(gone / name)
    (etc / "redis").mkdir()
    (etc / "redis" / "primary.conf").symlink_to(gone / "redis/primary.conf")

    result = run_local_sh(tmp_path, "ensure_secrets; link_configs; echo linked")

    assert result.returncode == 0 and "linked" in result.stdout, result.stderr
    for link, target in ((etc / "consul.d/local.hcl", "consul/local.hcl"),
                         (etc / "nomad.d/local.hcl", "nomad/local.hcl"),
                         (etc / "redis/primary.conf", "redis/primary.conf")):
        assert os.readlink(link) == str(REPO / target)
    assert (tmp_path / "bin" / "counter-redis-config").resolve() == REPO / "redis/counter-redis-config"
