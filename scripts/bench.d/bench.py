"""What scripts/bench runs, in the bench's venv once what it needs is built and
with its settings in the environment: a suite (suites.py), then the result
(report.py) with the settings and the machine.

usage: bench.py services|stack|all|traefik"""

import os
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import report
from load import Bench
from servers import ROOT, claim_ports
from suites import services, stack, traefik

from counterops.common import log


def loadavg():
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def write_result(b, suite):
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    cpu = re.search(r"^model name\s*: (.*)$", Path("/proc/cpuinfo").read_text(), re.M)
    mem_kb = int(re.search(r"^MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text(), re.M)[1])
    for key, value in (("meta.timestamp", stamp), ("settings.connections", b.connections),
                       ("settings.duration_s", b.duration), ("settings.rounds", b.rounds),
                       ("machine.cores", len(os.sched_getaffinity(0))), ("machine.cpu", cpu[1] if cpu else ""),
                       ("machine.memory_gib", f"{mem_kb / 1048576:.0f}"), ("machine.kernel", os.uname().release),
                       ("machine.load_at_end", loadavg())):
        b.value(key, value)
    results = ROOT / "bench/results"
    results.mkdir(parents=True, exist_ok=True)
    # The raw records too: report.py can render them again.
    shutil.copy(b.records, results / f"{stamp}.records")
    report.write(suite, str(results / f"{stamp}.records"), str(results / stamp))
    for ext in ("json", "md", "png"):
        if (results / f"{stamp}.{ext}").exists():
            shutil.copy(results / f"{stamp}.{ext}", results / f"latest.{ext}")
    log(f"results: {results / stamp}.{{json,md,png,records}} (and bench/results/latest.*)")


def main():
    suite = sys.argv[1]
    # Ctrl-C and kill end the run through the `finally` below, which stops every
    # process started (subprocess.run kills the tool running at that moment).
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="bench.") as work:
        b = Bench(Path(work))
        # The machine is shared: the load around the run says how much to trust it.
        b.value("machine.load_at_start", loadavg())
        if suite == "all":
            claim_ports(b.base, 31)
        try:
            for run_suite in {"services": [services], "stack": [stack], "all": [services, stack], "traefik": [traefik]}[suite]:
                run_suite(b)
                b.stop()
        finally:
            b.stop()
        write_result(b, suite)


if __name__ == "__main__":
    main()
