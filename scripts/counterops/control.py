"""The control plane's part of a cluster's deploy, run on the operator's
machine against the cluster's HTTPS APIs (deploy/site.yml's last play):
the ACLs of acl.toml, autopilot's setting, and the jobs. Each step reads
first and changes only what differs, so a second deploy changes nothing.

    python -m counterops.control --inventory FILE --artifact web=V:SHA ... [--artifact-url URL]
"""

import argparse
import sys

from . import acl, client, jobs, target


def keep_dead_servers(t):
    """Consul and Nomad keep every server a voter (cleanup_dead_servers off,
    consul/consul.hcl.j2 says why): the agents' configs set it when a
    cluster is first bootstrapped, but Raft keeps the setting afterwards, so
    a cluster deployed before is set through the API."""
    for name, api in (("Consul", t.consul()), ("Nomad", t.nomad())):
        config = api.get("/v1/operator/autopilot/configuration")
        if config["CleanupDeadServers"]:
            api.put("/v1/operator/autopilot/configuration", dict(config, CleanupDeadServers=False))
            acl.log(f"{name} autopilot updated: dead servers stay voters")


def main():
    p = argparse.ArgumentParser(prog="python -m counterops.control", description=__doc__.split("\n\n")[0])
    p.add_argument("--inventory", "-i", required=True)
    p.add_argument("--artifact", action="append", default=[], metavar="SERVICE=VERSION:SHA256")
    p.add_argument("--artifact-url", required=True, help="the artifact store")
    p.add_argument("--timeout", type=int, default=300, help="seconds to wait for each deployment")
    args = p.parse_args()
    t = target.cluster(args.inventory)
    try:
        acl.apply(t)
        keep_dead_servers(t)
        jobs.deploy(t, argparse.Namespace(jobs=[], vars_dir=None, artifact=args.artifact, artifact_url=args.artifact_url,
                                          keep_artifacts=False, set=[], clients=None, timeout=args.timeout,
                                          detach=False))
    except client.ApiError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
