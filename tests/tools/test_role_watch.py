"""consul/redis-role-watch: the role rules (which registration passes), and
its check mode against real redis-server processes. The run mode (TTL checks
on real Consul agents) is exercised by the cluster suite's failovers."""

import importlib.machinery
import importlib.util
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "consul/redis-role-watch"
loader = importlib.machinery.SourceFileLoader("role_watch", str(SCRIPT))
spec = importlib.util.spec_from_loader("role_watch", loader)
role_watch = importlib.util.module_from_spec(spec)
loader.exec_module(role_watch)


def verdict(**info):
    return role_watch.verdicts("n:1", {k: str(v) for k, v in info.items()})


def test_a_master_without_a_write_guard_is_the_primary_only():
    v = verdict(role="master", connected_slaves=0)
    assert v["primary"][0] and not v["replica"][0]


def test_a_master_with_an_in_sync_replica_is_the_primary():
    assert verdict(role="master", min_slaves_good_slaves=1)["primary"][0]


def test_a_master_that_would_refuse_writes_is_not_the_primary():
    passing, reason = verdict(role="master", min_slaves_good_slaves=0)["primary"]
    assert not passing and "refuse writes" in reason


def test_a_replica_with_its_link_up_serves_reads():
    v = verdict(role="slave", master_link_status="up")
    assert v["replica"][0] and not v["primary"][0]


def test_a_replica_keeps_serving_for_the_lease_after_its_link_drops():
    assert verdict(role="slave", master_link_status="down", master_link_down_since_seconds=4)["replica"][0]
    assert not verdict(role="slave", master_link_status="down", master_link_down_since_seconds=5)["replica"][0]


def test_a_replica_that_never_synced_serves_nothing():
    assert not verdict(role="slave", master_link_status="down", master_link_down_since_seconds=-1)["replica"][0]


def test_an_unknown_role_passes_neither():
    assert verdict(role="sentinel") == {r: (False, verdict(role="sentinel")[r][1]) for r in ("primary", "replica")}
    assert not any(p for p, _ in verdict().values())


def test_parse_info_reads_key_value_lines_and_skips_headers():
    info = role_watch.parse_info("# Replication\r\nrole:master\r\nconnected_slaves:2\r\n")
    assert info == {"role": "master", "connected_slaves": "2"}


def test_a_watch_spec_must_name_a_node_and_its_address():
    assert role_watch.parse_watch("m1=198.18.0.11:6380") == ("m1", "198.18.0.11", 6380)
    for bad in ("198.18.0.11:6380", "m1=198.18.0.11", "m1=:6380", "m1=h:port"):
        with pytest.raises(Exception, match="NAME=HOST:PORT"):
            role_watch.parse_watch(bad)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_server(tmp_path):
    """Starts redis-server processes on free loopback ports; stops them after."""
    procs = []

    def start(*extra):
        port = free_port()
        proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--dir", str(tmp_path), *extra],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return port
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on {port} did not start")

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


def check(port, role):
    env = {"PATH": "/usr/bin:/bin", "REDIS_ROLE_CHECK_ENV": "/nonexistent"}
    return subprocess.run([str(SCRIPT), "check", "127.0.0.1", str(port), role], env=env,
                          capture_output=True, text=True, timeout=10)


def test_check_mode_passes_the_primary_registration_of_a_lone_master(redis_server):
    port = redis_server()
    primary, replica = check(port, "primary"), check(port, "replica")
    assert (primary.returncode, replica.returncode) == (0, 2), (primary.stdout, replica.stdout)
    assert primary.stdout.startswith("passing: 127.0.0.1:")


def test_check_mode_fails_a_master_whose_write_guard_refuses_writes(redis_server):
    port = redis_server("--min-replicas-to-write", "1")
    result = check(port, "primary")
    assert result.returncode == 2 and "min_slaves_good_slaves:0" in result.stdout


def test_check_mode_follows_a_replica_through_its_sync(redis_server):
    primary = redis_server()
    replica = redis_server("--replicaof", "127.0.0.1", str(primary))
    deadline = time.monotonic() + 10
    while check(replica, "replica").returncode != 0:
        assert time.monotonic() < deadline, check(replica, "replica").stdout
        time.sleep(0.1)
    assert check(replica, "primary").returncode == 2


def test_check_mode_fails_both_registrations_of_a_node_that_does_not_answer():
    port = free_port()
    for role in ("primary", "replica"):
        result = check(port, role)
        assert result.returncode == 2 and "does not answer" in result.stdout


def test_check_mode_refuses_an_unknown_role():
    assert check(free_port(), "leader").returncode not in (0, 2)
