"""The chaos runner: a bounded mixed load through the floating gateway
address (or, without one, the gateways of the hosts the fault spares) runs
while one fault is injected and healed; then every acknowledged increment
must be in the final count (verdict.py). Two lines per scenario, the
verdict and the alerts Prometheus raised meanwhile (alerts.py):
  chaos <scenario>: write_gap_s=<s> read_gap_s=<s> failed=<n> lost=<n> | acked=<n> ... fault_step_s=<s>
  chaos <scenario>: alerts: <alert> <where> +<first>..+<last>s; ...
Load goes only to loopback or 198.18.0.0/15 (load.py refuses the rest)."""

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

from .. import client, common, status
from ..common import log
from ..redis import RedisError
from . import alerts, timeline
from .verdict import verdict

LOAD_SECONDS = float(os.environ.get("LOAD_SECONDS", "30"))  # the load around each fault
FAULT_AFTER = float(os.environ.get("FAULT_AFTER", "6"))  # seconds of load before the fault


def until(what, predicate, timeout):
    """Polls PREDICATE (errors count as no) until it holds; exits on timeout."""
    common.until(what, predicate, timeout, errors=(OSError, RedisError, client.ApiError, ValueError))


def primary_addr(t, avoid=()):
    """The address Consul passes as redis-primary: exactly one (each instance
    is registered by two agents, so addresses are deduplicated)."""
    entries = t.consul(avoid=avoid).get("/v1/health/service/redis-primary", params={"passing": "1"})
    addrs = {e["Service"]["Address"] or e["Node"]["Address"] for e in entries}
    if len(addrs) != 1:
        raise ValueError(f"Consul names {len(addrs)} passing redis-primary: {sorted(addrs)}")
    return addrs.pop()


def count_at(t, addr):
    """The counter on one Redis node, read as the `check` user."""
    with t.redis(addr) as r:
        return int(r.call("GET", "counter") or 0)


class Scenario:
    """One fault: prepare (pick the victim), fault, heal, cleanup. The load
    avoids the gateways of `avoid`; the runner's own API calls avoid the
    servers of `api_avoid`. A scenario with a `rotation` file sends the load
    to every host's gateway but those the file lists, and its load lasts
    until it healed (at most 600 s), whatever LOAD_SECONDS says."""
    rotation = None

    def __init__(self, t, name):
        self.t, self.name = t, name
        self.avoid, self.api_avoid = [], []

    def prepare(self):
        pass

    def fault(self):
        raise NotImplementedError

    def heal(self):
        pass

    def cleanup(self):
        pass


def inc_works(gateway, probes):
    """One probe increment; probes count as attempts (they may raise the
    final count whether or not they were acknowledged)."""
    probes[0] += 1
    req = urllib.request.Request(gateway + "/inc", method="POST")
    with urllib.request.urlopen(req, timeout=2) as r:
        return r.status == 200


class PrimaryWatch(threading.Thread):
    """Which address Consul passes as redis-primary, twice a second, until
    stopped: [(seconds since START, address or None)], for the timeline."""

    def __init__(self, t, avoid, start):
        super().__init__(daemon=True)
        self.t, self.avoid, self.start_at, self.seen, self.done = t, avoid, start, [], threading.Event()

    def run(self):
        while not self.done.wait(0.5):
            try:
                addr = primary_addr(self.t, self.avoid)
            except (OSError, ValueError, client.ApiError):
                addr = None
            self.seen.append((round(time.monotonic() - self.start_at, 2), addr))


def run(s):
    """Runs scenario S under load; (its verdict line, problems). Also writes
    its timeline (timeline.py) and says where."""
    t = s.t
    s.prepare()
    gateways = [t.gateway()] if t.gateway_vip and not s.rotation else \
        [t.gateway(h) for h in t.hosts if h not in s.avoid]
    if not gateways:
        raise SystemExit("error: no gateway left to send load to")
    try:
        primary = primary_addr(t, s.api_avoid)
    except ValueError as err:
        raise SystemExit(f"error: {err}: is the cluster up and healthy?") from None
    initial, probes = count_at(t, primary), [0]
    log(f"{s.name}: load for {LOAD_SECONDS:g}s through {' '.join(gateways)}; fault at {FAULT_AFTER:g}s")
    stop = f"{s.rotation}.stop" if s.rotation else None
    extra = ["--duration", "600", "--max-requests", "1000000", "--stop-file", stop,
             "--rotation-file", s.rotation] if s.rotation else ["--duration", str(LOAD_SECONDS)]
    load = subprocess.Popen([sys.executable, "-m", "counterops.chaos.load", *extra, *gateways],
                            stdout=subprocess.PIPE, text=True)
    started, started_at = time.monotonic(), time.time()
    watch = PrimaryWatch(t, s.api_avoid, started)
    watch.start()
    marks = {}
    try:
        time.sleep(FAULT_AFTER)
        faulted = time.monotonic()
        marks["fault"] = round(faulted - started, 2)
        s.fault()
        # Recovery: writes are acknowledged again through a surviving gateway.
        until(f"increments to be acknowledged again after {s.name}", lambda: inc_works(gateways[0], probes), 120)
        fault_step = time.monotonic() - faulted
        marks["recovered"] = round(time.monotonic() - started, 2)
        s.heal()
        marks["healed"] = round(time.monotonic() - started, 2)
    finally:
        if stop:
            open(stop, "w").close()
        out, _ = load.communicate(timeout=LOAD_SECONDS + 120 if not stop else 120)
        watch.done.set()
        s.cleanup()
    if load.returncode != 0:
        raise SystemExit(f"error: {s.name}: the load generator failed")
    # The final count, once writes work again, from whichever node is primary now.
    until(f"a single redis-primary after {s.name}", lambda: primary_addr(t, s.api_avoid), 120)
    final = count_at(t, primary_addr(t, s.api_avoid))
    log(f"{s.name}: healed after {time.monotonic() - started:.0f}s")
    result = json.loads(out)
    line, problems = verdict(s.name, result, initial, final, fault_step, probes[0])
    print(line, flush=True)
    # What an operator on call was told meanwhile.
    raised = alerts.fired(status.prometheus_url(t), started_at, time.time())
    print(alerts.line(s.name, raised), flush=True)
    png = timeline.record(s.name, line, result, marks, watch.seen, raised)
    if png:
        print(f"chaos {s.name}: timeline {png}", file=sys.stderr, flush=True)
    if result.get("error_kinds"):
        print(f"chaos {s.name}: errors by kind: {result['error_kinds']}", file=sys.stderr)
    for p in problems:
        print(f"chaos {s.name}: INVARIANT BROKEN: {p}", file=sys.stderr)
    return line, problems
