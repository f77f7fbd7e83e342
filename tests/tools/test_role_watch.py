"""counterops.role_watch: the role rules (which registration passes), and its
look at real redis-server processes. Its TTL checks on real Consul agents are
exercised by the e2e and cluster suites' failovers."""

import socket
import subprocess
import time

import pytest
from conftest import free_port

from counterops import role_watch
from counterops.redis import Redis, parse_info


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


def test_a_just_promoted_primary_serves_reads_until_a_replica_is_in_sync_for_the_lease_only():
    waiting = {"role": "master", "min_slaves_good_slaves": "0"}
    assert role_watch.verdicts("n:1", waiting, promoted_s=1.0)["replica"][0]
    assert not role_watch.verdicts("n:1", waiting, promoted_s=5.0)["replica"][0]
    # Never seen promoted (an old primary restarted with stale data): no reads.
    assert not role_watch.verdicts("n:1", waiting)["replica"][0]
    # Once a replica is in sync it is the primary, and no longer a replica.
    synced = role_watch.verdicts("n:1", {"role": "master", "min_slaves_good_slaves": "1"}, promoted_s=1.0)
    assert synced["primary"][0] and not synced["replica"][0]


def test_the_watch_notes_when_it_saw_a_node_promoted(redis_server):
    port = redis_server()
    replica = redis_server("--replicaof", "127.0.0.1", str(port), "--min-replicas-to-write", "1")
    node = role_watch.Look(Redis("127.0.0.1", replica, timeout=1))
    node()
    Redis("127.0.0.1", replica, timeout=1).call("REPLICAOF", "NO", "ONE")
    passing, reason = node()["replica"]
    assert passing and "promoted" in reason, reason


def test_a_replica_that_never_synced_serves_nothing():
    assert not verdict(role="slave", master_link_status="down", master_link_down_since_seconds=-1)["replica"][0]


def test_an_unknown_role_passes_neither():
    assert verdict(role="sentinel") == {r: (False, verdict(role="sentinel")[r][1]) for r in ("primary", "replica")}
    assert not any(p for p, _ in verdict().values())


def test_parse_info_reads_key_value_lines_and_skips_headers():
    info = parse_info("# Replication\r\nrole:master\r\nconnected_slaves:2\r\n")
    assert info == {"role": "master", "connected_slaves": "2"}


def test_a_watch_spec_must_name_a_node_and_its_address():
    assert role_watch.parse_watch("m1=198.18.0.11:6380") == ("m1", "198.18.0.11", 6380)
    for bad in ("198.18.0.11:6380", "m1=198.18.0.11", "m1=:6380", "m1=h:port"):
        with pytest.raises(Exception, match="NAME=HOST:PORT"):
            role_watch.parse_watch(bad)


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


def look(port, role):
    """(passing, reason) of one registration of the node on PORT."""
    return role_watch.look(Redis("127.0.0.1", port, timeout=1))[role]


def test_a_lone_master_passes_as_the_primary_only(redis_server):
    port = redis_server()
    (primary, reason), (replica, _) = look(port, "primary"), look(port, "replica")
    assert (primary, replica) == (True, False), reason
    assert reason.startswith("127.0.0.1:")


def test_a_master_whose_write_guard_refuses_writes_is_not_the_primary(redis_server):
    passing, reason = look(redis_server("--min-replicas-to-write", "1"), "primary")
    assert not passing and "min_slaves_good_slaves:0" in reason


def test_a_replica_passes_once_it_has_synced(redis_server):
    primary = redis_server()
    replica = redis_server("--replicaof", "127.0.0.1", str(primary))
    deadline = time.monotonic() + 10
    while not look(replica, "replica")[0]:
        assert time.monotonic() < deadline, look(replica, "replica")
        time.sleep(0.1)
    assert not look(replica, "primary")[0]


def test_a_node_that_does_not_answer_passes_neither_registration():
    port = free_port()
    for role in ("primary", "replica"):
        passing, reason = look(port, role)
        assert not passing and "does not answer" in reason
