"""Certificate rotation under load, without a failed request
(scripts/deploy rotate-certs -i INVENTORY [--ca]): every leaf made anew, or
with --ca every CA replaced too. Each step changes the cluster's TLS
directory on this machine (counterops/certs.py --rotate), then rolls the
hosts one at a time as the rolling reboot does (counterops/reboot.py): out
of rotation, its Redis out of discovery, drained; the new files installed
(the deploy's tasks tagged tls); every agent and Redis unit that started
before them restarted; back in service. Its jobs' tasks start again on new
files when the drain ends.

  leaves only:  leaves, roll
  --ca:         stage-ca, roll      every client trusts the old and new CAs
                promote-ca, roll    every leaf from the new CAs, both trusted
                retire-ca, roll     the old CAs trusted nowhere

A step's roll never needs a host to trust what another host does not yet
present, so the cluster works at every moment of it. Consul's login of
Nomad's workloads checks Nomad's signing keys against Nomad's CA: the ACLs
are applied again after each step, so that trust follows too. An
interrupted rotation is resumed by running the command again: the steps
already done are skipped (certs.py keeps the state in the CAs' directories).
"""

import argparse
import os
import shlex
import subprocess
import time
from pathlib import Path

from . import acl, client, reboot, target
from .common import die, log

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
# The units of a host that read certificates at start (their jobs' tasks
# start anew when the host's drain ends).
UNITS = ["consul.service", "nomad.service", "counter-redis@*.service", "counter-sentinel.service",
         "counter-redis-role-watch.service"]
# Restarts each unit that started before the new files arrived (epoch
# seconds in $1): the deploy's handlers restarted some already.
RESTART = ("for u in $(systemctl list-units --plain --no-legend --state=active " + " ".join(f"'{u}'" for u in UNITS)
           + " | awk '{print $1}'); do t=$(systemctl show -P ActiveEnterTimestamp --timestamp=unix \"$u\");"
           " if [ \"${t#@}\" -lt \"$1\" ]; then systemctl restart \"$u\" && echo \"$u\"; fi; done")


def deploy(inventory, what, *args):
    p = subprocess.run([str(DEPLOY), "--no-build", "-i", str(inventory), *args], capture_output=True, text=True)
    if p.returncode != 0:
        die(f"scripts/deploy ({what}) failed:\n{(p.stdout + p.stderr)[-3000:]}")


def make_certs(inventory, step):
    """STEP of counterops.certs --rotate, then what is missing made, on this
    machine (deploy/certs.yml)."""
    deploy(inventory, f"certificates, {step}", "--playbook", "certs.yml", "--", "-e", f"counter_certs_rotate={step}")


def install_certs(inventory, host):
    """The deploy's tasks tagged tls, on HOST alone."""
    deploy(inventory, f"TLS files of {host}", "--", "--limit", host, "--tags", "tls")


def renew_host(t, host, rotation):
    """One host's roll; its last log line says where the time went."""
    marks = [time.monotonic()]
    reboot.out_of_service(t, host, rotation)
    marks.append(time.monotonic())
    since = t.ssh(host, "date +%s").stdout.strip()
    install_certs(t.inventory, host)
    restarted = t.ssh(host, f"sh -c {shlex.quote(RESTART)} restart {since}", timeout=180).stdout.split()
    marks.append(time.monotonic())
    log(f"{host}: new files installed; restarted {', '.join(restarted) or 'nothing else'}")
    reboot.back_in_service(t, host, rotation)
    marks.append(time.monotonic())
    out, files, back = (b - a for a, b in zip(marks, marks[1:]))
    log(f"{host}: back in {marks[-1] - marks[0]:.0f}s (out of service {out:.0f}s, new files and restarts "
        f"{files:.0f}s, back in service {back:.0f}s)")


def steps(t, ca):
    """The steps still to run: a rotation of the CAs resumes where its state
    (certs.py's ca-next/, ca-previous/) says it stopped."""
    if not ca:
        return ["leaves"]
    tls = t.secrets / "tls"
    if (tls / "ca-previous").is_dir() and not (tls / "ca-next").is_dir():
        return ["promote-ca", "retire-ca"]
    return ["stage-ca", "promote-ca", "retire-ca"]


def rotate(t, ca=False, rotation=None):
    started = time.monotonic()
    for step in steps(t, ca):
        log(f"certificates: {step}")
        make_certs(t.inventory, step)
        acl.apply(t)
        for host in reboot.order(t, list(t.hosts)):
            renew_host(t, host, rotation)
    log(f"certificates rotated in {time.monotonic() - started:.0f}s")


def main():
    p = argparse.ArgumentParser(prog="scripts/deploy rotate-certs", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--inventory", "-i", required=True)
    p.add_argument("--ca", action="store_true", help="replace the CAs too (three rolls instead of one)")
    p.add_argument("--rotation", default=os.environ.get(reboot.ROTATION_ENV),
                   help=f"a file listing the gateways clients must avoid (default: ${reboot.ROTATION_ENV})")
    args = p.parse_args()
    t = target.cluster(args.inventory)
    if not (t.secrets / "tls").is_dir():
        die(f"no certificates in {t.secrets}/tls: was {args.inventory} deployed from this machine?")
    try:
        rotate(t, args.ca, args.rotation)
    except client.ApiError as err:
        die(str(err))


if __name__ == "__main__":
    main()
