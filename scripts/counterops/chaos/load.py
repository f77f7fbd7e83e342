"""Bounded mixed load for the chaos runner: GET / and POST /inc against one or
more gateways, recording every acknowledged increment's value and every error.

Stops by itself after --duration seconds or --max-requests requests, whichever
comes first, or earlier once --stop-file exists (a caller whose fault takes
an unknown time ends the load when it is done). Only loopback or the project's own 198.18.0.0/15 machines are
accepted as targets.

Prints one JSON object on stdout:
  {"acked": [values...], "attempted_inc": n, "get_ok": n, "get_errors": n,
   "inc_errors": n, "get_retried": n, "first_error_at": s|null, "last_error_at": s|null,
   "write_gap_s": s, "read_gap_s": s,
   "timeline": {"bin_s": 0.5, "get_ok": [n, ...], "inc_ok": [...], "get_err": [...], "inc_err": [...]}}
write_gap_s (read_gap_s) is the longest time in which no increment (no read)
succeeded: how long writes (reads) were out, measured by the load itself to
the millisecond, whatever the fault's own bookkeeping costs. timeline counts
each kind of answer per half second since the start (chaos/timeline.py
draws it).

Connections are kept alive, and a GET is retried once, on a new connection,
when a reused connection fails before any byte of the answer came back:
the rule of HTTP clients that keep connections (Go's net/http Transport,
browsers; RFC 9110 9.2.2 allows it for idempotent methods), because a kept
connection may die between requests (the gateway's address moved to
another machine, which answers a connection it never saw with a reset).
POST /inc is never retried: it may have counted. Retries are counted
("get_retried") and a retry that fails too is an error like any other.
"""

import argparse
import http.client
import ipaddress
import json
import os
import random
import sys
import threading
import time
import urllib.parse

ALLOWED = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("198.18.0.0/15")]


def allowed(url):
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        return any(ipaddress.ip_address(host) in net for net in ALLOWED)
    except ValueError:
        return False


class Results:
    def __init__(self):
        self.lock = threading.Lock()
        self.acked = []
        self.attempted_inc = 0
        self.get_ok = self.get_errors = self.inc_errors = self.get_retried = 0
        self.error_times = []
        self.error_kinds = {}
        # Times (since start) of failed reads and increments, for the timeline.
        self.get_error_times = []
        self.inc_error_times = []
        # Times (since start) of successful increments and reads.
        self.inc_ok_times = []
        self.get_ok_times = []

    def error(self, started, kind):
        self.error_times.append(time.monotonic() - started)
        (self.get_error_times if kind.startswith("GET") else self.inc_error_times).append(self.error_times[-1])
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1


def stopped(stop_file):
    return bool(stop_file) and os.path.exists(stop_file)


# What a kept connection that died between requests raises before any byte
# of the answer (http.client.RemoteDisconnected is a ConnectionResetError).
DEAD_KEPT_CONNECTION = (ConnectionResetError, BrokenPipeError)


def exchange(conns, url, method, path, results):
    """One request on the kept connection to url: (ok, body, kind)."""
    parts = urllib.parse.urlsplit(url)
    for attempt in (1, 2):
        conn, reused = conns.get(url), True
        if conn is None:
            conn, reused = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5), False
            conns[url] = conn
        try:
            conn.request(method, path, headers={"Accept": "text/plain"})
            resp = conn.getresponse()
            body = resp.read()
            return resp.status == 200, body, f"{method} {resp.status}"
        except (OSError, http.client.HTTPException) as e:
            conns.pop(url, None)
            conn.close()
            if attempt == 1 and reused and method == "GET" and isinstance(e, DEAD_KEPT_CONNECTION):
                with results.lock:
                    results.get_retried += 1
                continue
            return False, b"", f"{method} {type(e).__name__}"
    raise AssertionError("unreachable: the second attempt returns")


class Rotation:
    """The gateways in use: all but those a rotation file lists (a client
    behind a load balancer or DNS the operator takes a host out of), the
    file read again twice a second."""

    def __init__(self, gateways, path):
        self.gateways, self.path, self.read_at, self.out = gateways, path, 0.0, set()

    def choices(self):
        if self.path and time.monotonic() - self.read_at > 0.5:
            self.read_at = time.monotonic()
            self.out = set(open(self.path).read().split()) if os.path.exists(self.path) else set()
        return [g for g in self.gateways if g not in self.out] or self.gateways


def worker(rotation, is_inc, deadline, budget, results, started, seed, stop_file=None):
    rng = random.Random(seed)
    conns = {}
    while time.monotonic() < deadline and not stopped(stop_file):
        with results.lock:
            if budget[0] <= 0:
                return
            budget[0] -= 1
        choices = rotation.choices()
        for gone in [u for u in conns if u not in choices]:
            # Out of rotation: its connection is closed, as a load balancer
            # closes those to a backend it removed, so it is never reused later.
            conns.pop(gone).close()
        url = rng.choice(choices)
        method, path = ("POST", "/inc") if is_inc else ("GET", "/")
        ok, body, kind = exchange(conns, url, method, path, results)
        with results.lock:
            if is_inc:
                results.attempted_inc += 1
                if ok:
                    results.acked.append(int(body))
                    results.inc_ok_times.append(time.monotonic() - started)
                else:
                    results.inc_errors += 1
                    results.error(started, kind)
            elif ok:
                results.get_ok += 1
                results.get_ok_times.append(time.monotonic() - started)
            else:
                results.get_errors += 1
                results.error(started, kind)
        if not ok:
            time.sleep(0.05)  # a failing target is not hammered


def worker_roles(workers, inc_share):
    """Which workers send increments (True) and which read (False).

    Each worker keeps one kind: a worker that mixed them would sit in an
    increment waiting for a new primary during a failover, and the reads it
    did not send would show as a read outage that never was."""
    incs = min(max(round(workers * inc_share), 1), workers - 1) if workers > 1 else 0
    return [True] * incs + [False] * (workers - incs)


def longest_gap(times, end):
    """The longest stretch of [0, end] without a success."""
    marks = [0.0, *sorted(times), end]
    return round(max(b - a for a, b in zip(marks, marks[1:])), 3)


def binned(times, end, width=0.5):
    """How many of TIMES fall in each WIDTH-second bin of [0, end]."""
    counts = [0] * (int(end / width) + 1)
    for t in times:
        counts[min(int(t / width), len(counts) - 1)] += 1
    return counts


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("gateways", nargs="+", help="base URLs, e.g. http://198.18.0.11:8080")
    p.add_argument("--duration", type=float, default=20.0, help="seconds (max 600)")
    p.add_argument("--max-requests", type=int, default=200_000)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--inc-share", type=float, default=0.4,
                   help="fraction of the workers that send /inc (at least one of each kind)")
    p.add_argument("--stop-file", help="stop as soon as this file exists")
    p.add_argument("--rotation-file", help="gateways to avoid while this file lists them (one URL a line)")
    args = p.parse_args()
    bad = [g for g in args.gateways if not allowed(g)]
    if bad:
        sys.exit(f"refusing non-test targets {bad}: only 127.0.0.0/8 and 198.18.0.0/15")
    duration = min(args.duration, 600.0)
    results, started = Results(), time.monotonic()
    deadline, budget = started + duration, [args.max_requests]
    rotation = Rotation(args.gateways, args.rotation_file)
    threads = [threading.Thread(target=worker, args=(rotation, is_inc, deadline, budget, results, started, i,
                                                     args.stop_file))
               for i, is_inc in enumerate(worker_roles(args.workers, args.inc_share))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + 30)
    times = results.error_times
    ended = time.monotonic() - started
    print(json.dumps({
        "acked": results.acked, "attempted_inc": results.attempted_inc,
        "get_ok": results.get_ok, "get_errors": results.get_errors, "inc_errors": results.inc_errors,
        "get_retried": results.get_retried,
        "error_kinds": results.error_kinds,
        "first_error_at": min(times) if times else None, "last_error_at": max(times) if times else None,
        "write_gap_s": longest_gap(results.inc_ok_times, ended),
        "read_gap_s": longest_gap(results.get_ok_times, ended),
        "timeline": {"bin_s": 0.5, **{name: binned(times, ended) for name, times in (
            ("get_ok", results.get_ok_times), ("inc_ok", results.inc_ok_times),
            ("get_err", results.get_error_times), ("inc_err", results.inc_error_times))}},
    }))


if __name__ == "__main__":
    main()
