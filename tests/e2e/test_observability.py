"""scripts/status and scripts/logs on the running local stack: a request id
sent through the gateway (or made up by the service) is found in the service's
log, and in Traefik's access log when the request is one the gateway logs
(failed, retried or slow); the status tables name every job.
"""

import re
import secrets

from conftest import GATEWAY, http, run, sentinel, wait_for


def logs_for(request_id):
    p = run("scripts/logs", "--local", "--request-id", request_id, check=False)
    return p.stdout.splitlines()


def gateway_and_service_lines(request_id, service):
    lines = logs_for(request_id)
    access = [line for line in lines if re.search(rf" traefik@[0-9a-f]{{8}} access .* -> {service}@", line)]
    served = [line for line in lines if re.search(rf" {service}@[0-9a-f]{{8}} info answered ", line)]
    return (access, served) if access and served else None


def test_a_traced_request_is_found_by_its_id_in_the_service_log_and_not_in_the_access_log():
    # The access log keeps errors and slow requests only (its cost,
    # docs/benchmarks.md); Traefik cannot filter on a header, so a quick
    # traced success is the service's line alone, which logs it at info.
    request_id = "e2e-" + secrets.token_hex(8)

    r = http(GATEWAY + "/inc", method="POST", headers={"X-Request-Id": request_id}, data=b"")

    assert r.status == 200, r.text
    assert r.headers["X-Request-Id"] == request_id
    served = wait_for("the id in the service's log", lambda: [
        line for line in logs_for(request_id) if re.search(r" web-inc@[0-9a-f]{8} info answered ", line)])
    assert f"request_id={request_id}" in served[0]
    assert f" {r.headers['X-Served-By']} info answered " in served[0]
    assert not [line for line in logs_for(request_id) if " access " in line], "a quick 200 has no access line"


def test_a_failed_request_with_an_id_is_in_both_logs():
    request_id = "e2e-" + secrets.token_hex(8)

    r = http(GATEWAY + "/no-such-page", headers={"X-Request-Id": request_id})

    assert r.status == 404
    assert r.headers["X-Request-Id"] == request_id
    access, served = wait_for("the id in both logs", lambda: gateway_and_service_lines(request_id, "web"))
    assert f"id={request_id}" in access[0]
    assert f"request_id={request_id}" in served[0]
    # The access line names the allocation that answered, as the response did.
    assert f"-> {r.headers['X-Served-By']} " in access[0]


def test_a_failed_request_without_an_id_is_in_both_logs_under_the_id_the_service_made_up():
    # Untraced successes log at debug (their cost, docs/observability.md); a
    # failure is always at info, under the id the service made up and echoed,
    # which Traefik's access log keeps from the response.
    r = http(GATEWAY + "/no-such-page")

    assert r.status == 404
    request_id = r.headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    wait_for("the made-up id in both logs", lambda: gateway_and_service_lines(request_id, "web"))


def test_status_shows_every_machine_allocation_and_redis_role():
    p = run("scripts/status", "--local", "--interval", "0.5", check=False)

    assert p.returncode == 0, p.stdout + p.stderr
    assert re.search(r"^local\s+127\.0\.0\.1\s+alive server\s+ready", p.stdout, re.M), p.stdout
    for job in ("traefik", "web", "web-inc"):
        assert re.search(rf"^{job}\s+[0-9a-f]{{8}}\s+local\s+running\s+passing", p.stdout, re.M), p.stdout
    assert re.search(r"^local\s+127\.0\.0\.1:6380\s+(primary|replica)", p.stdout, re.M), p.stdout
    assert re.search(r"^local\s+127\.0\.0\.1:\d+\s+replica\s+\d+B \d+s\s+link up", p.stdout, re.M), p.stdout
    # The Sentinel runs with the timers its unit sets (status compares the two).
    assert re.search(r"^sentinels \(1\): primary 127\.0\.0\.1:638[01]; ping-period 250 ms, info-period 600 ms$",
                     p.stdout, re.M), p.stdout


def test_status_names_a_sentinel_that_runs_without_its_units_timers():
    with sentinel() as s:
        s.call("SENTINEL", "DEBUG", "ping-period", "1000")
    try:
        p = run("scripts/status", "--local", "--interval", "0.5", check=False)
    finally:
        with sentinel() as s:
            s.call("SENTINEL", "DEBUG", "ping-period", "250")

    assert p.returncode == 1, p.stdout + p.stderr
    assert "127.0.0.1 runs ping-period 1000, info-period 600 (the unit sets ping-period 250, info-period 600" \
        in p.stdout, p.stdout
