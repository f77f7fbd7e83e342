"""A run of scripts/bench: its settings, the processes it started (every one
stopped on exit, failure included), its records (read by report.py), and the
load generators that fill them, each bounded in time:
  wrk              closed loop: as fast as CONNECTIONS connections go (throughput)
  loadgen          open loop at a fixed rate (bench/loadgen): latency at a given load
  redis-benchmark  INCR without pipelining, the raw store's ceiling"""

import os
import re
import signal
import subprocess
import sys
import time

from servers import ROOT, cpu_s, redis_gets, tcp_passive_opens

from counterops.common import die, log


def figures(text):
    """{key: value} of a tool's "key=value ..." line."""
    return dict(pair.split("=", 1) for pair in text.split())


def half(rps):
    return int(rps / 2)


class Bench:
    def __init__(self, work):
        env = os.environ  # set by scripts/bench, with their defaults (see its --help)
        self.duration, self.rounds, self.connections = int(env["DURATION"]), int(env["ROUNDS"]), int(env["CONNECTIONS"])
        self.base, self.flood_inc_rate = int(env["BENCH_BASE_PORT"]), int(env["FLOOD_INC_RATE"])
        self.variants = [v for v in env["TRAEFIK_VARIANTS"].split(",") if v]
        self.traefik_path = env["TRAEFIK_PATH"]
        self.work, self.records, self.started = work, work / "records", []
        self.round = 0  # recorded with every run
        self.log_sinks = []  # logs emptied after every run

    def start(self, name, *cmd, env=None):
        """CMD in the background, its output appended to WORK/NAME.log (so a
        log emptied under it stays small)."""
        with open(self.work / f"{name}.log", "ab") as log_file:
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=env)
        p.log = self.work / f"{name}.log"
        self.started.append(p)
        return p

    def stop(self):
        """Ends every process started so far (between suites, and on exit); one
        already waited for is not signalled (its PID may be another's now)."""
        for p in self.started:
            p.send_signal(signal.SIGCONT)  # one stopped on purpose (suites.measure_scraped) hears the TERM
            p.terminate()
        for p in self.started:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.started = []

    def write(self, line):
        with open(self.records, "a") as f:
            f.write(line + "\n")

    def value(self, key, text):
        """One figure (peak RSS, counts, settings)."""
        self.write(f"value {key} {text}")

    def record(self, name, run):
        """One measured run of this round, its figures a dict."""
        self.write(f"run {name} {self.round} " + " ".join(f"{k}={v}" for k, v in run.items()))
        for sink in self.log_sinks:
            sink.write_bytes(b"")

    def each_round(self, suite, what):
        """Baseline and subject alternate within a round, so drift in the
        machine's load hits both."""
        for i in range(1, self.rounds + 1):
            self.round = i
            log(f"{suite} round {i}/{self.rounds}: {what} (-c{self.connections}, {self.duration}s each)")
            yield

    def tool(self, name, address, cmd, env=None):
        """CMD's output; dies with it if CMD fails. Killed 30 s after DURATION."""
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=self.duration + 30, env=env)
        if done.returncode != 0:
            sys.stderr.write(done.stdout + done.stderr)
            die(f"{name}: {os.path.basename(cmd[0])} failed or had errors on {address}")
        return done.stdout

    def wrk_cmd(self, address, duration):
        return ["wrk", "-t2", f"-c{self.connections}", f"-d{duration}s", "-s", ROOT / "scripts/bench.d/wrk.lua", address]

    def wrk_result(self, name, output, address):
        """The figures of wrk.lua's RESULT line; dies on a non-2xx answer."""
        line = re.search(r"^RESULT (.*)$", output, re.M)
        if not line:
            sys.stderr.write(output)
            die(f"{name}: no result from wrk on {address}")
        run = figures(line[1])
        if run["non2xx"] != "0":
            die(f"{name}: non-2xx answers from {address} ({line[1]})")
        if run["socket_errors"] != "0":
            print(f"warning: {name}: socket errors on {address} ({line[1]})", file=sys.stderr)
        return run

    def watched(self, watch, gets_on, measure):
        """MEASURE()'s figures, and what the run cost: WATCH (name=pid), the CPU
        each of these processes spent per request, as cpu_<name> (microseconds);
        GETS_ON (a Redis port), the GET commands that Redis served per request
        (web coalesces concurrent reads into one GET: fewer means bigger batches).
        Always: TCP connections accepted per second on the machine, tcp_accepts_per_s
        (a proxy that opened a connection per request would show it here)."""
        before = {k: cpu_s(pid) for k, pid in watch.items()}
        accepts, started = tcp_passive_opens(), time.monotonic()
        gets = redis_gets(gets_on) if gets_on else 0
        run = measure()
        requests = float(run["rps"]) * self.duration
        for k, pid in watch.items():
            run[f"cpu_{k}"] = f"{(cpu_s(pid) - before[k]) * 1e6 / requests:.1f}"
        run["tcp_accepts_per_s"] = f"{(tcp_passive_opens() - accepts) / (time.monotonic() - started):.1f}"
        if gets_on:
            run["gets_per_request"] = f"{(redis_gets(gets_on) - gets) / requests:.3f}"
        return run

    def wrk(self, name, address, mix=None, gets_on=None, **watch):
        """One closed-loop run of DURATION s; returns its req/s. WATCH, GETS_ON:
        watched(). MIX=N sends every Nth request to /inc (wrk.lua)."""
        env = {**os.environ, "BENCH_MIX": str(mix)} if mix else None
        run = self.watched(watch, gets_on, lambda: self.wrk_result(
            name, self.tool(name, address, self.wrk_cmd(address, self.duration), env), address))
        self.record(name, run)
        return float(run["rps"])

    def loadgen(self, name, address, rate, headers=(), gets_on=None, **watch):
        """One open-loop run of DURATION s at RATE req/s, with HEADERS ("Name:
        value") added to each request. WATCH, GETS_ON: watched()."""
        cmd = [ROOT / "target/loadgen/release/loadgen", "--rate", str(rate), "--duration", str(self.duration),
               "--connections", str(self.connections), *(a for h in headers for a in ("--header", h)), address]
        self.record(name, self.watched(watch, gets_on, lambda: figures(self.tool(name, address, cmd))) | {"rate": rate})

    def redis_incr(self, name, port):
        cmd = ["redis-benchmark", "-p", str(port), "-c", str(self.connections), "-n", str(self.duration * 40000),
               "-t", "incr", "-P", "1", "-q"]
        rps = re.search(r"INCR: ([\d.]+) requests per second", self.tool(name, port, cmd))
        self.record(name, {"rps": rps[1]} if rps else die("could not read redis-benchmark's result"))

    def flood(self, name, get_address, inc_address):
        """wrk floods GET / (closed loop) while loadgen sends /inc at
        FLOOD_INC_RATE; records NAME_get and NAME_inc."""
        wrk = self.start(f"{name}-{self.round}", *self.wrk_cmd(get_address, self.duration + 2))
        time.sleep(1)
        self.loadgen(f"{name}_inc", inc_address, self.flood_inc_rate)
        if wrk.wait(self.duration + 30) != 0:
            sys.stderr.write(wrk.log.read_text())
            die(f"{name}: the GET flood (wrk) failed")
        self.record(f"{name}_get", self.wrk_result(f"{name}_get", wrk.log.read_text(), get_address))
