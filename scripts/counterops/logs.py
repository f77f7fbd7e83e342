"""scripts/logs: the logs of every allocation of the Counter jobs, from every
machine, merged in time order. Reads them through Nomad's API (the servers
forward to each machine's client), stdout and stderr of every task.

Every line is JSON (the services' tracing, Traefik's log and access log) and
its own timestamp orders it (docs/observability.md); a line without one (a
panic message) keeps the time of the line before it in the same stream.
"""

import argparse
import json
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from . import client, target

JOBS = ["traefik", "web", "web-inc"]
EPOCH = datetime.fromtimestamp(0, timezone.utc)


def allocations(nomad, jobs, running_only=True):
    """The allocations of JOBS, by job, machine and ID (scripts/status's too)."""
    return sorted((a for a in nomad.get("/v1/allocations") if a["JobID"] in jobs
                   and (a["ClientStatus"] == "running" or not running_only)),
                  key=lambda a: (a["JobID"], a.get("NodeName", ""), a["ID"]))


def parse_time(value):
    """RFC 3339 with any number of fraction digits (Go writes 9, tracing 6:
    Python 3.11's fromisoformat reads both), UTC when it names no zone."""
    if not isinstance(value, str) or len(value) < 20:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


@dataclass(order=True)
class Line:
    """One log line; lines sort by time, then by their order in their stream."""
    time: datetime
    seq: int
    source: str = field(compare=False)
    raw: str = field(compare=False)
    doc: object = field(compare=False)


class Stream:
    """One task's stdout or stderr in one allocation."""

    def __init__(self, alloc, task, kind):
        self.alloc, self.task, self.kind = alloc, task, kind
        machine = alloc.get("NodeName") or alloc["NodeID"][:8]
        self.source = f"{machine} {alloc['JobID']}@{alloc['ID'][:8]}" + ("!" if kind == "stderr" else "")
        self.path = f"/v1/client/fs/logs/{alloc['ID']}"
        self.last, self.seq, self.partial = EPOCH, 0, ""

    def params(self, window, follow):
        p = {"task": self.task, "type": self.kind, "plain": "true", "origin": "end", "offset": str(window)}
        return dict(p, follow="true") if follow else p

    def lines(self, chunk, mid_line=False):
        """Complete lines of a chunk, as Line objects; keeps the unfinished tail.
        MID_LINE: the chunk starts inside a line (a read from an offset that
        the log is longer than), whose fragment is dropped."""
        if mid_line and "\n" in chunk:
            chunk = chunk.split("\n", 1)[1]
        *complete, self.partial = (self.partial + chunk).split("\n")
        out = []
        for raw in (r.rstrip("\r") for r in complete if r.strip()):
            doc = t = None
            if raw.startswith("{"):
                try:
                    doc = json.loads(raw)
                except ValueError:
                    pass
            if isinstance(doc, dict):
                t = parse_time(doc.get("StartUTC")) or parse_time(doc.get("timestamp")) or parse_time(doc.get("time"))
            self.last = t or self.last
            self.seq += 1
            out.append(Line(self.last, self.seq, self.source, raw, doc))
        return out


def streams_of(allocs):
    """Every task's stdout and stderr (the tasks: those of its task states, else its group's name)."""
    return [Stream(a, task, kind) for a in allocs for task in sorted((a.get("TaskStates") or {}).keys()) or [a["TaskGroup"]]
            for kind in ("stdout", "stderr")]


def render(line, as_json):
    when = line.time.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if line.time != EPOCH else "-" * 23
    d = line.doc
    if as_json or not isinstance(d, dict):
        return f"{when} {line.source} {line.raw}"
    if "RequestMethod" in d and "DownstreamStatus" in d:  # Traefik's access log
        ms = d.get("Duration", 0) / 1e6
        to = d.get("downstream_X-Served-By") or d.get("ServiceURL") or d.get("RouterName", "-")
        text = (f"access {d.get('RequestMethod')} {d.get('RequestPath')} {d.get('DownstreamStatus')} "
                f"{ms:.1f}ms -> {to} id={d.get('downstream_X-Request-Id', '-')}")
        sent = d.get("request_X-Request-Id")
        if sent and sent != d.get("downstream_X-Request-Id"):
            text += f" sent_id={sent}"
        if d.get("RetryAttempts"):
            text += f" retries={d['RetryAttempts']}"
        return f"{when} {line.source} {text}"
    level = str(d.get("level", "")).lower()
    msg = d.get("message", d.get("msg", ""))
    skip = {"timestamp", "time", "level", "message", "msg", "span", "target", "threadId", "threadName"}
    extra = [f"{k}={v}" for k, v in d.items() if k not in skip]
    span = d.get("span")
    if isinstance(span, dict) and "request_id" in span:
        extra.append(f"request_id={span['request_id']}")
    return f"{when} {line.source} {level} {msg} {' '.join(extra)}".rstrip()


def read_tail(nomad, stream, window):
    try:
        text = nomad.text(stream.path, stream.params(window, False), timeout=10)
    except client.ApiError as e:
        print(f"warning: {stream.source} {stream.task} {stream.kind}: {e}", file=sys.stderr)
        return []
    return stream.lines(text, mid_line=len(text.encode()) >= window)


def follow_stream(nomad, stream, window, out, stop):
    """Streams one log into `out` until stop is set; reconnects (bounded backoff)."""
    delay, first = 1.0, True
    while not stop.is_set():
        try:
            with nomad.open("GET", stream.path, params=stream.params(window if first else 0, True), timeout=3600) as r:
                delay, skip, first = 1.0, first, False
                while not stop.is_set() and (chunk := r.read1(65536)):
                    for line in stream.lines(chunk.decode(errors="replace"), mid_line=skip and len(chunk) >= window):
                        out.put(line)
                    skip = False
        except client.ApiError as e:
            if e.status == 404 or "not found" in str(e).lower():
                return  # the allocation is gone
        except OSError:
            pass
        stop.wait(delay)
        delay = min(delay * 2, 10)


def matches(line, args):
    """A request id matches anywhere in a line: the service's span.request_id,
    Traefik's request_/downstream_X-Request-Id."""
    return args.request_id is None or args.request_id in line.raw


def last(lines, n):
    """The last N of LINES; all of them when N is 0."""
    return lines[-n:] if n else lines


def run_follow(nomad, args):
    out, stop = queue.Queue(), threading.Event()
    started, pending = set(), []  # (when received, line)
    start, printed_tail, next_refresh = time.monotonic(), False, 0.0
    try:
        while True:
            if time.monotonic() >= next_refresh:
                next_refresh = time.monotonic() + 5
                try:
                    allocs = allocations(nomad, args.jobs)
                except client.ApiError as e:
                    print(f"warning: {e}", file=sys.stderr)
                    allocs = []
                for s in streams_of(allocs):
                    if (s.alloc["ID"], s.task, s.kind) not in started:
                        started.add((s.alloc["ID"], s.task, s.kind))
                        # A later allocation is new: its whole log fits the window.
                        threading.Thread(target=follow_stream, args=(nomad, s, args.bytes, out, stop), daemon=True).start()
            try:
                while True:
                    line = out.get(timeout=0.2)
                    if matches(line, args):
                        pending.append((time.monotonic(), line))
            except queue.Empty:
                pass
            now = time.monotonic()
            if now - start < 2:  # the first 2 s gather every stream's tail
                continue
            # The tail: the last N lines gathered, merged. Later lines: each held
            # for a second, so lines from streams that arrive slightly out of
            # step are printed in time order.
            hold = 1.0 if printed_tail else 0.0
            ready = sorted(line for t, line in pending if now - t >= hold)
            pending = [(t, line) for t, line in pending if now - t < hold]
            for line in ready if printed_tail else last(ready, args.lines):
                print(render(line, args.json), flush=True)
            printed_tail = True
    except KeyboardInterrupt:
        stop.set()
        return 0


def main():
    p = argparse.ArgumentParser(prog="scripts/logs", description=__doc__.split("\n\n")[0],
                                epilog="Traefik's access lines read: access GET /inc 200 1.3ms -> web-inc@1a2b3c4d id=<id>")
    p.add_argument("jobs", nargs="*", default=[], help=f"default: {' '.join(JOBS)}")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines (Ctrl-C stops), new allocations too")
    p.add_argument("--request-id", metavar="ID", help="only lines that mention ID: the gateway's and the service's")
    p.add_argument("-n", "--lines", type=int, help="the last N lines (default 100; all with --request-id)")
    p.add_argument("--bytes", type=int, help="how much of each log's end to read (default 1 MiB, 8 MiB with --request-id)")
    p.add_argument("--all", action="store_true", help="also allocations that have stopped (until Nomad's GC)")
    p.add_argument("--json", action="store_true", help="the raw JSON lines instead of the summary")
    target.add_arguments(p)
    args = p.parse_args()
    for job in args.jobs:
        if job not in JOBS:
            p.error(f"unknown job {job!r} (expected {', '.join(JOBS)})")
    args.jobs = args.jobs or JOBS
    # A request's lines may be further back; and it wants all of them.
    args.bytes = (8 << 20 if args.request_id else 1 << 20) if args.bytes is None else args.bytes
    args.lines = (0 if args.request_id else 100) if args.lines is None else args.lines
    nomad = target.from_args(args).nomad()
    try:
        nomad.get("/v1/status/leader")
    except client.ApiError as e:
        sys.exit(f"error: no Nomad answers ({e}); start it with scripts/up, scripts/cluster up or scripts/deploy")
    if args.follow:
        return run_follow(nomad, args)
    try:
        allocs = allocations(nomad, args.jobs, running_only=not args.all)
    except client.ApiError as e:
        sys.exit(f"error: cannot list allocations: {e}")
    if not allocs:
        sys.exit(f"error: no {'' if args.all else 'running '}allocations of {', '.join(args.jobs)}")
    lines = last(sorted(line for s in streams_of(allocs) for line in read_tail(nomad, s, args.bytes)
                        if matches(line, args)), args.lines)
    for line in lines:
        print(render(line, args.json))
    if args.request_id and not lines:
        sys.exit(f"no line mentions request id {args.request_id}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:
        sys.exit(0)
