"""The gateway limits the increments one client makes: above
counter_inc_limit_per_client per second (deploy/group_vars/all/settings.yml),
the next /inc gets 429 with Retry-After from Traefik, and counts nothing.
The test sets the limit to 100/s on the running web-inc job (a change of its
Traefik tags only, applied in place), sends a burst well over it from one
client, and puts the job back as it was."""

import subprocess
import sys
import threading
import time
from http.client import HTTPConnection

from conftest import GATEWAY, REPO, TRAEFIK_API, get_json, http, wait_for

from counterops import render

LIMIT = 100
BURST = 160  # requests sent at once: more than a second's worth


def redeploy_web_inc(limit):
    p = subprocess.run([sys.executable, "-m", "counterops.jobs", "redeploy", "--local", "--timeout", "120",
                        "--set", f"inc_limit_per_client={limit}", "web-inc"],
                       capture_output=True, text=True, timeout=180,
                       env={"PYTHONPATH": str(REPO / "scripts"), "PATH": "/usr/bin:/bin"})
    assert p.returncode == 0, p.stdout + p.stderr


def limit_routed(limit):
    """Traefik routes /inc through a rateLimit middleware of this average."""
    middlewares = {m["name"]: m for m in get_json(TRAEFIK_API + "/http/middlewares")}
    limiter = middlewares.get("web-inc-limit@consulcatalog", {}).get("rateLimit", {})
    return limiter.get("average", 0) == limit


def burst_from_one_client(n):
    """N POST /inc at once over 16 keep-alive connections from 127.0.0.1:
    [(status, Retry-After)], and the seconds the burst took."""
    answers, lock = [], threading.Lock()

    def client(count):
        c = HTTPConnection("127.0.0.1", 8080, timeout=10)
        for _ in range(count):
            c.request("POST", "/inc")
            r = c.getresponse()
            r.read()
            with lock:
                answers.append((r.status, r.getheader("Retry-After")))

    threads = [threading.Thread(target=client, args=(n // 16,)) for _ in range(16)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers, time.monotonic() - started


def count():
    return int(http(GATEWAY + "/").text.strip())


def test_the_increment_after_the_limit_gets_429_with_retry_after_and_counts_nothing():
    default = render.settings()["counter_inc_limit_per_client"]
    redeploy_web_inc(LIMIT)
    try:
        wait_for("Traefik to route /inc through a limit of 100/s", lambda: limit_routed(LIMIT), timeout=30)
        time.sleep(1.1)  # the bucket full again after the checks' requests
        before = count()
        answers, took = burst_from_one_client(BURST)
        ok = [a for a in answers if a[0] == 200]
        limited = [a for a in answers if a[0] == 429]
        assert len(ok) + len(limited) == BURST, sorted({a[0] for a in answers})
        # The bucket holds a second's worth (burst = average) and refills at 100/s.
        assert LIMIT <= len(ok) <= LIMIT + LIMIT * took + 2, (len(ok), took)
        assert limited and all(retry == "1" for _, retry in limited), limited[:3]
        # A refused increment counted nothing: the count moved by the 200s alone.
        assert count() - before == len(ok)
    finally:
        redeploy_web_inc(default)
    wait_for(f"the limit back to {default}/s", lambda: limit_routed(default), timeout=30)
