"""Autoscaling of web by the real nomad-autoscaler, on Nomad's own metrics.

scripts/up runs the autoscaler as a Nomad job (nomad/autoscaler.nomad.hcl), as
a cluster does; the policy is the `scaling` block of nomad/web.nomad.hcl: 2 to 6 allocations,
target-value on avg_cpu-allocated from the nomad-apm source. This test drives
web through Traefik with a bounded, open-loop load (bench/loadgen: a fixed
request rate for a fixed time, loopback only) and watches the group's count
in Nomad's /v1/job/web/scale: it must rise above 2 under the load and come
back to 2 once the load has stopped, each within a bounded time.

Why the numbers hold on a busy 2-core machine (docs/autoscaling.md has the
measurements): the load is open-loop, so the CPU web spends is the rate times
its cost per request, whatever else runs on the machine; LOAD_RATE makes the
average allocation use several times its target, and idle web uses about 1 %
of it, so both decisions have a wide margin. Only the times stretch on a busy
machine, and the deadlines leave room for that.
"""

import json
import os
import subprocess
import time

import pytest
from conftest import GATEWAY, NOMAD, REPO, get_json, http, run

MIN, MAX = 2, 6
# Requests per second through the gateway. Measured here: web spends about
# 0.9 MHz per request/s (docs/autoscaling.md), so 400 req/s is about 360 MHz:
# two allocations at 3.6x their 50 MHz target (scale-out needs > 1.01x), and
# still 1.8x if a request cost half as much on a quieter machine.
LOAD_RATE = int(os.environ.get("SCALING_LOAD_RATE", "400"))
LOAD_CONNECTIONS = 32
# The load stops at the latest after this, scaled out or not.
LOAD_MAX_S = 90
# After the first scale-out, the load goes on this long, so the new
# allocations take traffic before it stops.
LOAD_AFTER_SCALE_OUT_S = 10
# Scale-in: at most the 20 s cooldown left over from the last scale-out, one
# 5 s evaluation interval, then the stopping allocations' 3 s shutdown delay
# and drain; four times that for a loaded machine.
SCALE_IN_MAX_S = 120


def autoscaler_health():
    """The autoscaler job's /v1/health, on the loopback port Nomad gave it."""
    allocs = [a for a in get_json(NOMAD + "/v1/job/autoscaler/allocations") if a["ClientStatus"] == "running"]
    assert len(allocs) == 1, f"the autoscaler job runs {len(allocs)} allocations (scripts/up submits it)"
    alloc = get_json(NOMAD + f"/v1/allocation/{allocs[0]['ID']}")
    port = next(p["Value"] for p in alloc["AllocatedResources"]["Shared"]["Ports"] if p["Label"] == "http")
    return http(f"http://127.0.0.1:{port}/v1/health")


def scale_status():
    """(desired, running, placed-but-not-yet-running) of group web, from Nomad."""
    group = get_json(NOMAD + "/v1/job/web/scale")["TaskGroups"]["web"]
    return group["Desired"], group["Running"], group["Placed"]


def loadgen_binary():
    """bench/loadgen, built (incrementally) into target/loadgen like scripts/bench
    does: seconds when up to date, a minute or two from scratch."""
    build = subprocess.run(
        ["cargo", "build", "--release", "--locked", "--quiet", "--manifest-path",
         "bench/loadgen/Cargo.toml", "--target-dir", "target/loadgen"],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, f"building bench/loadgen failed:\n{build.stderr}"
    return REPO / "target" / "loadgen" / "release" / "loadgen"


def web_cpu_percent_of_reservation():
    """Each running web allocation's CPU as nomad-apm sees it (for the log)."""
    job = get_json(NOMAD + "/v1/job/web")
    reserved = sum(t["Resources"]["CPU"] for g in job["TaskGroups"] for t in g["Tasks"])
    out = []
    for alloc in get_json(NOMAD + "/v1/job/web/allocations"):
        if alloc["ClientStatus"] != "running":
            continue
        stats = http(f"{NOMAD}/v1/client/allocation/{alloc['ID']}/stats")
        if stats.status == 200:
            ticks = stats.json()["ResourceUsage"]["CpuStats"]["TotalTicks"]
            out.append(round(100 * ticks / reserved))
    return out


def wait_steady(what, predicate, timeout):
    """Polls once a second; returns the seconds it took, fails after timeout."""
    start = time.monotonic()
    last = None
    while time.monotonic() - start < timeout:
        last = predicate()
        if last:
            return time.monotonic() - start
        time.sleep(1)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def test_web_scales_out_under_load_and_back_in_after_it():
    health = autoscaler_health()
    assert health.status == 200, f"the autoscaler is not healthy: {health.status} {health.text}"
    policies = [p for p in get_json(NOMAD + "/v1/scaling/policies?job=web") if p["Enabled"]]
    assert len(policies) == 1, policies
    (group,) = get_json(NOMAD + "/v1/job/web")["TaskGroups"]
    assert (group["Scaling"]["Min"], group["Scaling"]["Max"]) == (MIN, MAX), group["Scaling"]
    # A previous run (or a person) may have left web scaled out: start from 2.
    wait_steady("web at its minimum of 2, all running", lambda: scale_status()[:2] == (MIN, MIN), SCALE_IN_MAX_S)
    print(f"\nidle: web CPU per allocation, % of reservation: {web_cpu_percent_of_reservation()}")

    loadgen = loadgen_binary()
    load = subprocess.Popen(
        [str(loadgen), "--rate", str(LOAD_RATE), "--duration", str(LOAD_MAX_S),
         "--connections", str(LOAD_CONNECTIONS), GATEWAY + "/"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    started = time.monotonic()
    timeline = []
    scaled_out_at = None
    try:
        while load.poll() is None:
            desired, running, _ = scale_status()
            t = time.monotonic() - started
            if not timeline or timeline[-1][1:] != (desired, running):
                timeline.append((round(t, 1), desired, running))
                print(f"t={t:5.1f}s desired={desired} running={running} "
                      f"cpu%={web_cpu_percent_of_reservation()}")
            if desired > MIN and scaled_out_at is None:
                scaled_out_at = t
            if scaled_out_at is not None and t >= scaled_out_at + LOAD_AFTER_SCALE_OUT_S:
                break
            time.sleep(1)
    finally:
        if load.poll() is None:
            load.terminate()
        out, _ = load.communicate(timeout=10)
    load_stopped = time.monotonic()
    print(f"load: {LOAD_RATE} req/s for {load_stopped - started:.0f}s; loadgen: {out.strip() or '(terminated)'}")

    assert scaled_out_at is not None, (
        f"web did not scale out in {LOAD_MAX_S}s of {LOAD_RATE} req/s: {timeline}")
    peak = max(d for _, d, _ in timeline)
    assert MIN < peak <= MAX, timeline

    def back_at_min():
        desired, running, _ = scale_status()
        t = time.monotonic() - started
        if timeline[-1][1:] != (desired, running):
            timeline.append((round(t, 1), desired, running))
            print(f"t={t:5.1f}s desired={desired} running={running}")
        return (desired, running) == (MIN, MIN)

    scale_in_s = wait_steady("web back at 2 after the load", back_at_min, SCALE_IN_MAX_S)
    print(f"scale-out: count above {MIN} {scaled_out_at:.1f}s after the load started (peak {peak}); "
          f"scale-in: back at {MIN} {scale_in_s:.1f}s after it stopped")
    print(run("nomad", "job", "scaling-events", "web").stdout)


def test_the_autoscalers_rights_cannot_stop_increments_or_the_autoscaler():
    """Its policy may scale jobs in the namespace (web's count is its to set), but web-inc's
    and its own counts are pinned by their jobs' scaling blocks: Nomad's scale
    API refuses them whoever asks."""
    created = http(NOMAD + "/v1/acl/token", "POST", data=json.dumps(
        {"Name": "e2e-autoscaler-rights", "Type": "client", "Policies": ["autoscaler"],
         "ExpirationTTL": "10m"}).encode())
    assert created.status == 200, created.text
    token = created.json()
    as_autoscaler = {"X-Nomad-Token": token["SecretID"]}

    def scale(job, group, count):
        body = json.dumps({"Count": count, "Target": {"Group": group}, "Message": "e2e: autoscaler rights"})
        return http(f"{NOMAD}/v1/job/{job}/scale", "POST", headers=as_autoscaler, data=body.encode(),
                    anonymous=True)

    try:
        web_inc = get_json(NOMAD + "/v1/job/web-inc/scale")["TaskGroups"]["web-inc"]["Desired"]
        stop_increments = scale("web-inc", "web-inc", 0)
        # 400, the bounds: the token may scale (an ACL refusal is a 403).
        assert stop_increments.status == 400, stop_increments.text
        assert "less than scaling policy minimum" in stop_increments.text
        assert scale("autoscaler", "autoscaler", 0).status == 400
        assert get_json(NOMAD + "/v1/job/web-inc/scale")["TaskGroups"]["web-inc"]["Desired"] == web_inc
        # Without the token the same request stops at the ACLs.
        anonymous = http(f"{NOMAD}/v1/job/web-inc/scale", "POST", anonymous=True,
                         data=json.dumps({"Count": 0, "Target": {"Group": "web-inc"}}).encode())
        assert anonymous.status == 403, anonymous.text
    finally:
        http(f"{NOMAD}/v1/acl/token/{token['AccessorID']}", "DELETE")
