"""Settings changed without a restart: a key put in Consul KV reaches the
running web instances (Nomad template -> runtime file -> SIGHUP), while a
bounded stream of requests through the gateway keeps getting 200s.
"""

import json
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone

from conftest import GATEWAY, NOMAD, get_json, http, run, token_headers, wait_for

PREFIX = "counter/config/web"


def running_web_allocs():
    allocs = get_json(f"{NOMAD}/v1/job/web/allocations")
    return {a["ID"]: a for a in allocs if a["ClientStatus"] == "running"}


def stdout_of(alloc_id):
    url = f"{NOMAD}/v1/client/fs/logs/{alloc_id}?task=web&type=stdout&origin=start&plain=true"
    req = urllib.request.Request(url, headers=token_headers(url))
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read().decode(errors="replace")


def json_lines(text):
    for line in text.splitlines():
        try:
            yield json.loads(line)
        except ValueError:
            continue


def applied(alloc_id, **settings):
    return any(
        line.get("message") == "runtime settings applied"
        and all(str(line.get(k)) == str(v) for k, v in settings.items())
        for line in json_lines(stdout_of(alloc_id))
    )


def iso_seconds_ago(seconds):
    """A UTC timestamp comparable, as a string, with the services' log timestamps."""
    return (datetime.now(timezone.utc) - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")


def debug_lines_since(alloc_id, since):
    return [line for line in json_lines(stdout_of(alloc_id))
            if line.get("level") == "DEBUG" and str(line.get("timestamp", "")) >= since]


class BoundedReads(threading.Thread):
    """GET / through the gateway until stopped, at most `limit` requests or `seconds`."""

    def __init__(self, limit=3000, seconds=60):
        super().__init__(daemon=True)
        self.limit, self.seconds = limit, seconds
        self.statuses = []
        self.stop = threading.Event()

    def run(self):
        deadline = time.monotonic() + self.seconds
        while not self.stop.is_set() and len(self.statuses) < self.limit and time.monotonic() < deadline:
            self.statuses.append(http(GATEWAY + "/").status)
            time.sleep(0.01)


def test_a_log_level_put_in_consul_kv_reaches_the_running_instances_without_a_restart():
    before = running_web_allocs()
    assert before, "web has running allocations"
    # At the start-time level (info), the probes every second leave no debug line.
    time.sleep(3)
    quiet_since = iso_seconds_ago(3)
    for alloc_id in before:
        assert not debug_lines_since(alloc_id, quiet_since), f"alloc {alloc_id[:8]} logs at debug before the change"
    reads = BoundedReads()
    reads.start()
    try:
        run("consul", "kv", "put", f"{PREFIX}/COUNTER_LOG_LEVEL", "debug")
        for alloc_id in before:
            wait_for(f"alloc {alloc_id[:8]} to apply log_level=debug",
                     lambda a=alloc_id: applied(a, log_level="debug"), timeout=30)

        # Debug lines (Consul's and Traefik's health probes log at debug) now
        # appear in every instance's log, where there were none at info.
        for alloc_id in before:
            wait_for(f"debug lines from alloc {alloc_id[:8]}",
                     lambda a=alloc_id: debug_lines_since(a, quiet_since), timeout=10)

        # A bad value is refused by the running instances, which keep serving.
        run("consul", "kv", "put", f"{PREFIX}/COUNTER_STORE_TIMEOUT_MS", "1")
        for alloc_id in before:
            wait_for(f"alloc {alloc_id[:8]} to reject the bad value", lambda a=alloc_id: any(
                "COUNTER_STORE_TIMEOUT_MS" in str(line.get("reason", ""))
                for line in json_lines(stdout_of(a))), timeout=30)
        assert http(GATEWAY + "/").status == 200
    finally:
        run("consul", "kv", "delete", "-recurse", PREFIX + "/", check=False)
        reads.stop.set()
        reads.join()

    # Back to the start-time settings, still in the same processes.
    for alloc_id in before:
        wait_for(f"alloc {alloc_id[:8]} back to log_level=info",
                 lambda a=alloc_id: applied(a, log_level="info"), timeout=30)
    after = running_web_allocs()
    assert set(after) == set(before), "no allocation was replaced"
    # Restarts during the test (an earlier test may have killed one: the
    # alerts' in test_metrics.py).
    for alloc_id, alloc in after.items():
        restarts = alloc["TaskStates"]["web"]["Restarts"] - before[alloc_id]["TaskStates"]["web"]["Restarts"]
        assert restarts == 0, f"alloc {alloc_id[:8]} restarted {restarts} times"
    failed = [s for s in reads.statuses if s != 200]
    assert reads.statuses and not failed, f"{len(failed)} of {len(reads.statuses)} reads failed: {set(failed)}"
