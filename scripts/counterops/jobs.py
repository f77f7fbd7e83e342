"""Counter's Nomad jobs: the one place that knows their variables. scripts/up
(the local stack), the deploy (its control step, run on the operator's
machine) and scripts/chaos (a rolling deploy) all submit jobs through it, so
the variables cannot drift between them:

Locally the job files' defaults; in a cluster the variables, counts and
submission rules of docs/deploy.md ("The jobs"): counts the autoscaler set
are preserved unless the hosts changed, a job whose plan shows no change is
not submitted, the others go through `nomad job run` (so Nomad keeps the
source and variables, and `nomad job revert` works) and are waited for.
"""

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from . import client, render, target
from .common import die, log

REPO = Path(__file__).resolve().parents[2]
# In submission order: the gateway first, so it routes the services as soon
# as they register; the autoscaler once web exists; the metrics last, once
# there is something to scrape.
JOBS = ["traefik", "web", "web-inc", "autoscaler", "exporters", "prometheus"]
# Prometheus' and Alertmanager's data on a cluster host, outside the
# allocation (deploy/roles/counter_node creates it, its job's user's alone).
CLUSTER_METRICS_DATA = "/var/lib/counter/prometheus"
# Where the deploy installs the CAs of Consul and Redis on every host
# (deploy/roles/counter_node): each client trusts its peer's role alone.
CONSUL_CA, REDIS_CA = "/etc/counter/tls/consul-ca.pem", "/etc/counter/tls/redis-ca.pem"
DEPLOY_VARIABLE = "counter/deploy"


def job_vars(profile, job, clients, args, settings=None, gateway_vip=None):
    """The variables a job is submitted with in a profile (name -> string), from
    SETTINGS (the target's: render.settings() and a cluster inventory's own)
    and the cluster's floating gateway address GATEWAY_VIP, if it has one."""
    # Its tasks' own user, in both modes (--set task_user= task_uid=-1 for none).
    settings = settings or render.settings()
    v = {"task_user": settings["counter_task_users"][job], "task_uid": str(settings["counter_task_uids"][job])}
    if job == "web-inc":
        v["inc_limit_per_client"] = str(settings["counter_inc_limit_per_client"])
    if job in ("web", "web-inc"):
        if args.keep_artifacts:
            kept = read_var_file(os.path.join(args.vars_dir, f"{job}.vars.hcl"))
            v.update({k: kept[k] for k in ("version", "checksum", "artifact_url") if k in kept})
        for spec in args.artifact:
            service, _, rest = spec.partition("=")
            version, _, checksum = rest.partition(":")
            if service == job:
                v.update(version=version, checksum=checksum)
        if "version" not in v:
            die(f"no --artifact {job}=VERSION:SHA256 given (or --keep-artifacts with a var file)")
        v.setdefault("artifact_url", args.artifact_url)
    if profile == "cluster" and job == "traefik":
        # Every address of the host (its own and the floating one), HTTPS,
        # and mutual TLS to the services.
        v.update(gateway_bind="", https="true", services_tls="true")
    if profile == "cluster" and job in ("web", "web-inc"):
        # One instance per host: losing a host loses one instance, not all.
        # TLS to Consul (its HTTPS port on loopback) and to Redis, each
        # verified against the CA of its role; HTTPS from the gateway only.
        v.update(distinct_hosts="true", canary="0", consul_http_addr="https://127.0.0.1:8501", consul_cacert=CONSUL_CA,
                 redis_tls_ca=REDIS_CA, services_tls="true", count="2")
        if job == "web":  # sized to the hosts
            top = min(clients, 6)
            v.update(count=str(top), scaling_max=str(top), scaling_min=str(min(3, top)))
    if profile == "cluster" and job == "exporters":
        # HTTPS for Prometheus alone, and TLS to the host's Redis; which host
        # holds the floating gateway address, when there is one.
        v.update(tls="true", redis_ports=f"{settings['redis_port']},{settings['counter_sentinel_port']}")
        if gateway_vip:
            v["gateway_address"] = gateway_vip
    if profile == "cluster" and job == "prometheus":
        v.update(tls="true", data_dir=CLUSTER_METRICS_DATA,
                 consul_tls_name=f"client.{settings['counter_datacenter']}.consul")
    for spec in args.set:
        name, _, value = spec.partition("=")
        target, _, name = name.rpartition(":")
        if target in ("", job):
            v[name] = value
    return v


def read_var_file(path):
    """A var file this wrote: one `name = "value"` a line."""
    lines = Path(path).read_text().splitlines() if os.path.exists(path) else []
    return {name.strip(): json.loads(value) for name, sep, value in (line.partition(" = ") for line in lines) if sep}


def write_var_file(path, variables):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        for name, value in sorted(variables.items()):
            f.write(f"{name} = {json.dumps(value)}\n")
    os.replace(path + ".tmp", path)


def nomad_job_run(args, env, failed, cwd=REPO):
    """`nomad job run ARGS`, its output; a failure ends the command (FAILED, then
    what nomad said)."""
    out = subprocess.run(["nomad", "job", "run", *args], cwd=cwd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        die(failed + (out.stderr.strip() or out.stdout.strip()))
    return out.stdout


def meaningful(diff):
    """Whether a plan's diff changes anything. Nomad reports an edited but
    empty Scaling object for every submission of a job with a scaling block;
    that is not a change."""
    if not diff:
        return False
    parts = [obj for key in ("Objects", "TaskGroups", "Tasks") for obj in diff.get(key) or []]
    return (any(f.get("Type") != "None" and f.get("Old") != f.get("New") for f in diff.get("Fields") or [])
            or any(obj.get("Type") in ("Added", "Deleted") or meaningful(obj) for obj in parts))


def wait_deployed(nomad, job_id, timeout):
    """Until the job's latest version runs: its deployment succeeded (service
    jobs) or every allocation of it runs (system jobs); then says which version."""
    deadline, report, nudge = (time.monotonic() + s for s in (timeout, 10, 45))
    while True:
        job = nomad.get(f"/v1/job/{job_id}", missing_ok=True)
        version = job["Version"]
        if job["Type"] == "system":
            every = [a for a in nomad.get(f"/v1/job/{job_id}/allocations") or [] if a["DesiredStatus"] == "run"]
            allocs = [a for a in every if a["JobVersion"] == version]
            # Still running an older version somewhere: not updated yet.
            old = [a for a in every if a["JobVersion"] != version and a["ClientStatus"] in ("pending", "running")]
            failed = [a for a in allocs if a["ClientStatus"] == "failed"]
            if failed:
                die(f"{job_id}: allocation {failed[0]['ID'][:8]} failed; see: nomad alloc status {failed[0]['ID'][:8]}")
            running = sum(1 for a in allocs if a["ClientStatus"] == "running")
            state = f"{running} of {len(allocs)} allocations running, {len(old)} of an older version"
            if allocs and running == len(allocs) and not old:
                break
            # The system scheduler replaces max_parallel allocations per
            # evaluation and relies on a follow-up evaluation for the rest;
            # after a failed deployment of the job that one was seen never to
            # come (an old allocation kept running for minutes). Ask for one.
            if old and time.monotonic() > nudge:
                nomad.post(f"/v1/job/{job_id}/evaluate", {"JobID": job_id})
                nudge = time.monotonic() + 30
        else:
            dep = nomad.get(f"/v1/job/{job_id}/deployment", missing_ok=True)
            if dep and dep["JobVersion"] == version:
                if dep["Status"] == "successful":
                    break
                if dep["Status"] in ("failed", "cancelled"):
                    die(f"{job_id}: deployment {dep['Status']}: {dep['StatusDescription']}\n"
                        f"  see: nomad job status {job_id}; nomad alloc logs -stderr -job {job_id}")
                state = dep["StatusDescription"]
            else:
                state = f"waiting for the deployment of version {version}"
        if time.monotonic() > deadline:
            die(f"{job_id}: not deployed after {timeout}s ({state}); see: nomad job status {job_id}")
        if time.monotonic() > report:
            log(f"{job_id}: {state}")
            report = time.monotonic() + 10
        time.sleep(0.5)
    print(f"{job_id}: deployed version {nomad.get(f'/v1/job/{job_id}')['Version']}", flush=True)


def wait_clients(nomad, want, timeout=120):
    """The ready clients once there are WANT (a host the deploy just started
    registers a few seconds later), or what there are at TIMEOUT."""
    deadline = time.monotonic() + timeout
    while (have := sum(n["Status"] == "ready" and n["SchedulingEligibility"] == "eligible"
                       for n in nomad.get("/v1/nodes") or [])) < want and time.monotonic() < deadline:
        time.sleep(1)
    if have < want:
        log(f"only {have} of {want} Nomad clients ready after {timeout}s; sizing for {have}")
    return have


def deploy(t, args):
    nomad, env = t.nomad(), t.cli_env()
    clients, resized = 1, False
    if t.kind == "cluster":
        clients = wait_clients(nomad, args.clients or len(t.hosts))
        var = nomad.get(f"/v1/var/{DEPLOY_VARIABLE}", missing_ok=True)
        resized = (var or {}).get("Items", {}).get("clients") != str(clients)
    args.vars_dir = args.vars_dir or str(t.state / "jobs")
    for job_id in args.jobs or JOBS:
        job_file = f"nomad/{job_id}.nomad.hcl"
        if not (REPO / job_file).exists():
            die(f"no job file {job_file} in {REPO}")
        var_file = os.path.join(args.vars_dir, f"{job_id}.vars.hcl")
        write_var_file(var_file, job_vars(t.kind, job_id, clients, args, t.settings(), t.gateway_vip))
        # The job as Nomad's JSON, as `nomad job run` would submit it.
        job = json.loads(nomad_job_run(["-output", f"-var-file={var_file}", job_file], env, f"{job_file}: "))["Job"]
        current = nomad.get(f"/v1/job/{job_id}", missing_ok=True)
        # web is sized again when the hosts changed; otherwise every group
        # keeps the count it has (the autoscaler's).
        preserve = current is not None and not (resized and job_id == "web")
        if current is not None and not current.get("Stop"):
            if preserve:  # plan what -preserve-counts will submit
                counts = {g["Name"]: g["Count"] for g in current.get("TaskGroups") or []}
                for group in job.get("TaskGroups") or []:
                    if group["Name"] in counts:
                        group["Count"] = counts[group["Name"]]
            plan = nomad.post(f"/v1/job/{job_id}/plan", {"Job": job, "Diff": True})
            if not meaningful(plan.get("Diff")):
                print(f"{job_id}: unchanged (version {current['Version']})", flush=True)
                # Submitting the same job again starts no new deployment, so
                # an earlier failed one is only reported, not retried.
                dep = nomad.get(f"/v1/job/{job_id}/deployment", missing_ok=True)
                if dep and dep["JobVersion"] == current["Version"] and dep["Status"] == "failed":
                    log(f"warning: {job_id}: the deployment of version {current['Version']} failed earlier "
                        f"({dep['StatusDescription']}); see: nomad job status {job_id}")
                continue
        log(f"{job_id}: submitting {job_file} ({'new' if current is None else 'changed'})")
        nomad_job_run(["-detach", f"-var-file={var_file}", *(["-preserve-counts"] if preserve else []), job_file], env,
                      f"{job_file}: nomad job run failed:\n")
        if args.detach:
            print(f"{job_id}: submitted", flush=True)
        else:
            wait_deployed(nomad, job_id, args.timeout)
    if resized:
        nomad.put(f"/v1/var/{DEPLOY_VARIABLE}", {"Namespace": "default", "Path": DEPLOY_VARIABLE,
                                                  "Items": {"clients": str(clients)}})
        print(f"sized for {clients} hosts", flush=True)


def redeploy(t, args):
    """Submits jobs again with the variables of their running version,
    changed by --set (e.g. release=NAME for a rolling deploy of the same
    build), counts preserved. Needs no file of the deploy: Nomad keeps each
    version's source and variables."""
    nomad, env = t.nomad(), t.cli_env()
    for job_id in args.jobs:
        current = nomad.get(f"/v1/job/{job_id}", missing_ok=True) or die(f"no job {job_id}")
        sub = nomad.get(f"/v1/job/{job_id}/submission", params={"version": current["Version"]}, missing_ok=True)
        if not sub:
            die(f"{job_id}: Nomad kept no source of version {current['Version']}; submit it with jobs deploy")
        variables = dict(sub.get("VariableFlags") or {})
        variables.update(spec.partition("=")[::2] for spec in args.set)
        with tempfile.TemporaryDirectory() as tmp:
            job_file, var_file = Path(tmp, f"{job_id}.nomad.hcl"), Path(tmp, "vars.hcl")
            job_file.write_text(sub["Source"])
            var_file.write_text(sub.get("Variables") or "")
            nomad_job_run(["-detach", "-preserve-counts", f"-var-file={var_file}",
                           *(f"-var={k}={v}" for k, v in sorted(variables.items())), str(job_file)], env,
                          f"{job_id}: nomad job run failed:\n", cwd=tmp)
        log(f"{job_id}: submitted again with {' '.join(args.set) or 'the same variables'}")
        if not args.detach:
            wait_deployed(nomad, job_id, args.timeout)


def main():
    p = argparse.ArgumentParser(prog="python -m counterops.jobs", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("deploy", help="submit the jobs (what changed only) and wait for them")
    target.add_arguments(d)
    d.add_argument("--vars-dir", help="where to write <job>.vars.hcl, for nomad job run by hand "
                   "(default: the deployment's state directory/jobs)")
    d.add_argument("--artifact", action="append", default=[], metavar="SERVICE=VERSION:SHA256",
                   help="a packaged service (scripts/artifacts prints them)")
    d.add_argument("--artifact-url", default="http://127.0.0.1:8090", help="the artifact store")
    d.add_argument("--keep-artifacts", action="store_true",
                   help="web and web-inc keep the artifacts of their var files in --vars-dir")
    d.add_argument("--set", action="append", default=[], metavar="[JOB:]NAME=VALUE",
                   help="override a variable (of every job, or of JOB)")
    d.add_argument("--clients", type=int, help="the hosts the cluster should have (default: the inventory's); "
                   "wait up to 120 s for that many ready Nomad clients before sizing web")
    d.add_argument("--timeout", type=int, default=240, help="seconds to wait for each deployment")
    d.add_argument("--detach", action="store_true", help="submit without waiting")
    d.add_argument("jobs", nargs="*", help=f"default: {' '.join(JOBS)}")
    r = sub.add_parser("redeploy", help="submit running jobs again with changed variables (counts preserved)")
    target.add_arguments(r)
    r.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    r.add_argument("--timeout", type=int, default=240)
    r.add_argument("--detach", action="store_true")
    r.add_argument("jobs", nargs="+")
    args = p.parse_args()
    t = target.from_args(args)
    try:
        (deploy if args.command == "deploy" else redeploy)(t, args)
    except client.ApiError as err:
        die(str(err))


if __name__ == "__main__":
    main()
