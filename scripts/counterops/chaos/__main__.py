"""scripts/chaos [--inventory FILE] <scenario>|all, or soak [--minutes N]:
failure injection against a running cluster, judged by what clients saw
(runner.py). Exits 1 when an invariant breaks."""

import argparse
import os
import sys

from .. import target
from . import faults, runner


def rss_by_service(t):
    """The largest resident set (MiB) of each service's processes over every host."""
    top = {}
    for h in t.hosts:
        out = t.ssh(h, "ps -o rss=,comm= -C web,web-inc,traefik", check=False).stdout
        for line in out.splitlines():
            rss, comm = line.split()
            top[comm] = max(top.get(comm, 0), int(rss) / 1024)
    return " ".join(f"{s}={top.get(s, 0):.1f}" for s in ("web", "web-inc", "traefik"))


def soak(t, minutes):
    """One fault a minute, each with its own 60 s load and verdict; then the
    totals and the RSS of the services at the start and the end."""
    os.environ.update(LOAD_SECONDS="60", FAULT_AFTER="20")
    runner.LOAD_SECONDS, runner.FAULT_AFTER = 60, 20
    start, sums, failed = rss_by_service(t), {}, False
    runner.log(f"soak: {minutes} minute(s), one fault a minute; RSS (MiB) at start: {start}")
    for i in range(1, minutes + 1):
        name = faults.draw(t)
        runner.log(f"soak: minute {i} of {minutes}: {name}")
        line, problems = runner.run(faults.make(t, name))
        failed |= bool(problems)
        for field in line.split()[2:]:
            key, _, value = field.partition("=")
            if value.replace(".", "").isdigit():
                sums[key] = sums.get(key, 0) + float(value)
    print(f"chaos soak: minutes={minutes} " + " ".join(f"{k}={int(sums.get(k, 0))}" for k in
          ("acked", "attempted", "lost", "get_errors", "inc_errors")))
    print(f"chaos soak: rss_mib start {start} end {rss_by_service(t)}")
    return failed


def main():
    p = argparse.ArgumentParser(prog="scripts/chaos", description=__doc__.split("\n\n")[0],
                                epilog=f"Scenarios: {' '.join(faults.SCENARIOS)}. Environment: LOAD_SECONDS "
                                f"({runner.LOAD_SECONDS:g}), FAULT_AFTER ({runner.FAULT_AFTER:g}). machine-loss and "
                                "partition leave the cluster changed: run them last ('all' does).")
    p.add_argument("--inventory", "-i", help=f"the cluster's inventory (default: {target.TEST_INVENTORY})")
    p.add_argument("scenario", help="a scenario, all, or soak")
    p.add_argument("--minutes", type=int, default=10, help="soak: how long (1 to 120)")
    args = p.parse_args()
    t = target.cluster(args.inventory or target.TEST_INVENTORY)
    if args.scenario == "soak":
        if not 1 <= args.minutes <= 120:
            p.error(f"--minutes: 1 to 120, got {args.minutes}")
        failed = soak(t, args.minutes)
    else:
        names = faults.ALL if args.scenario == "all" else [args.scenario]
        failed = sum(bool(runner.run(faults.make(t, n))[1]) for n in names)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
