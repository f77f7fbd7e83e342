"""scripts/logs: the logs of every allocation of the Counter jobs, from every
machine, merged in time order. Reads them through Nomad's API (the servers
forward to each machine's client), stdout and stderr of every task.

Every line is JSON (the services' tracing, Traefik's log and access log); its
own timestamp orders it. A line without one (a panic message) keeps the time
of the line before it in the same stream. A request id matches anywhere in a
line: the service's span.request_id, Traefik's request_/downstream_X-Request-Id.
"""

import argparse
import heapq
import json
import queue
import sys
import threading
import time
from datetime import datetime, timezone

from . import client, target

JOBS = ["traefik", "web", "web-inc"]


def allocations(nomad, jobs, running_only=True):
    """The allocations of JOBS, by job, machine and ID."""
    return sorted((a for a in nomad.get("/v1/allocations") if a["JobID"] in jobs
                   and (a["ClientStatus"] == "running" or not running_only)),
                  key=lambda a: (a["JobID"], a.get("NodeName", ""), a["ID"]))


def alloc_tasks(alloc):
    """Task names of an allocation (its task states, else its group's name)."""
    return sorted((alloc.get("TaskStates") or {}).keys()) or [alloc["TaskGroup"]]
EPOCH = datetime.fromtimestamp(0, timezone.utc)


def parse_time(value):
    """RFC 3339 with any number of fraction digits (Go writes 9, tracing 6)."""
    if not isinstance(value, str) or len(value) < 20:
        return None
    v = value.replace("Z", "+00:00")
    if "." in v:
        head, rest = v.split(".", 1)
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits):]
        v = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    try:
        t = datetime.fromisoformat(v)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


class Line:
    __slots__ = ("time", "seq", "source", "raw", "doc")

    def __init__(self, time_, seq, source, raw, doc):
        self.time, self.seq, self.source, self.raw, self.doc = time_, seq, source, raw, doc

    def __lt__(self, other):
        return (self.time, self.seq) < (other.time, other.seq)


class Stream:
    """One task's stdout or stderr in one allocation."""

    def __init__(self, alloc, task, kind):
        self.alloc, self.task, self.kind = alloc, task, kind
        machine = alloc.get("NodeName") or alloc["NodeID"][:8]
        self.source = f"{machine} {alloc['JobID']}@{alloc['ID'][:8]}" + ("!" if kind == "stderr" else "")
        self.last = EPOCH
        self.seq = 0
        self.partial = ""

    def params(self, window, follow):
        p = {"task": self.task, "type": self.kind, "plain": "true", "origin": "end", "offset": str(window)}
        if follow:
            p["follow"] = "true"
        return p

    def lines(self, chunk):
        """Complete lines of a chunk, as Line objects; keeps the unfinished tail."""
        text = self.partial + chunk
        *complete, self.partial = text.split("\n")
        out = []
        for raw in complete:
            raw = raw.rstrip("\r")
            if not raw.strip():
                continue
            doc = None
            if raw.startswith("{"):
                try:
                    doc = json.loads(raw)
                except ValueError:
                    doc = None
            t = None
            if isinstance(doc, dict):
                t = parse_time(doc.get("StartUTC")) or parse_time(doc.get("timestamp")) or parse_time(doc.get("time"))
            if t is not None:
                self.last = t
            self.seq += 1
            out.append(Line(t or self.last, self.seq, self.source, raw, doc))
        return out


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


def streams_of(allocs):
    return [Stream(a, task, kind) for a in allocs for task in alloc_tasks(a) for kind in ("stdout", "stderr")]


def read_tail(nomad, stream, window):
    try:
        text = nomad.text(f"/v1/client/fs/logs/{stream.alloc['ID']}", stream.params(window, False), timeout=10)
    except client.ApiError as e:
        print(f"warning: {stream.source} {stream.task} {stream.kind}: {e}", file=sys.stderr)
        return []
    # An offset inside the file starts mid-line: drop that fragment.
    if len(text.encode()) >= window and "\n" in text:
        text = text.split("\n", 1)[1]
    return stream.lines(text)


def matches(line, args):
    return args.request_id is None or args.request_id in line.raw


def follow_stream(nomad, stream, window, out, stop):
    """Streams one log into `out` until stop is set; reconnects (bounded backoff)."""
    delay = 1.0
    first = True
    while not stop.is_set():
        try:
            with nomad.open("GET", f"/v1/client/fs/logs/{stream.alloc['ID']}",
                            params=stream.params(window if first else 0, True), timeout=3600) as r:
                delay = 1.0
                skip_fragment = first
                first = False
                while not stop.is_set():
                    chunk = r.read1(65536) if hasattr(r, "read1") else r.read(4096)
                    if not chunk:
                        break
                    text = chunk.decode(errors="replace")
                    if skip_fragment:
                        skip_fragment = False
                        if "\n" in text and len(chunk) >= window:
                            text = text.split("\n", 1)[1]
                    for line in stream.lines(text):
                        out.put(line)
        except client.ApiError as e:
            if e.status == 404 or "not found" in str(e).lower():
                return  # the allocation is gone
        except OSError:
            pass
        stop.wait(delay)
        delay = min(delay * 2, 10)


def run_follow(nomad, args):
    out = queue.Queue()
    stop = threading.Event()
    started = set()
    pending = []
    start = time.monotonic()
    printed_tail = False
    next_refresh = 0.0
    try:
        while True:
            now = time.monotonic()
            if now >= next_refresh:
                next_refresh = now + 5
                try:
                    allocs = allocations(nomad, args.jobs, running_only=True)
                except client.ApiError as e:
                    print(f"warning: {e}", file=sys.stderr)
                    allocs = []
                for s in streams_of(allocs):
                    key = (s.alloc["ID"], s.task, s.kind)
                    if key not in started:
                        started.add(key)
                        # A later allocation is new: its whole log fits the window.
                        window = args.bytes
                        threading.Thread(target=follow_stream, args=(nomad, s, window, out, stop), daemon=True).start()
            try:
                while True:
                    line = out.get(timeout=0.2)
                    if matches(line, args):
                        heapq.heappush(pending, (time.monotonic(), line))
            except queue.Empty:
                pass
            if not printed_tail:
                # The first 2 s gather every stream's tail; print the last N of them merged.
                if time.monotonic() - start < 2:
                    continue
                printed_tail = True
                tail = sorted(line for _, line in pending)
                if args.lines:
                    tail = tail[-args.lines:]
                for line in tail:
                    print(render(line, args.json), flush=True)
                pending = []
                continue
            # Later lines: hold each for a second so lines from streams that
            # arrive slightly out of step are printed in time order.
            ready = [item for item in pending if time.monotonic() - item[0] >= 1.0]
            if ready:
                pending = [item for item in pending if time.monotonic() - item[0] < 1.0]
                for _, line in sorted(ready, key=lambda item: item[1]):
                    print(render(line, args.json), flush=True)
    except KeyboardInterrupt:
        stop.set()
        return 0


def main():
    p = argparse.ArgumentParser(prog="scripts/logs", description=__doc__.split("\n\n")[0],
                                epilog="Traefik's access lines read: access GET /inc 200 1.3ms -> web-inc@1a2b3c4d id=<id>")
    p.add_argument("jobs", nargs="*", default=[], help=f"default: {' '.join(JOBS)}")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines (Ctrl-C stops), new allocations too")
    p.add_argument("--request-id", metavar="ID", help="only lines that mention ID: the gateway's and the service's")
    p.add_argument("-n", "--lines", type=int, default=None, help="the last N lines (default 100; all with --request-id)")
    p.add_argument("--bytes", type=int, default=None,
                   help="how much of each log's end to read (default 1 MiB, 8 MiB with --request-id)")
    p.add_argument("--all", action="store_true", help="also allocations that have stopped (until Nomad's GC)")
    p.add_argument("--json", action="store_true", help="the raw JSON lines instead of the summary")
    target.add_arguments(p)
    args = p.parse_args()
    for job in args.jobs:
        if job not in JOBS:
            p.error(f"unknown job {job!r} (expected {', '.join(JOBS)})")
    args.jobs = args.jobs or JOBS
    if args.bytes is None:
        args.bytes = 8 << 20 if args.request_id else 1 << 20
    if args.lines is None:
        args.lines = 0 if args.request_id else 100
    t = target.from_args(args)
    nomad = t.nomad()
    try:
        nomad.get("/v1/status/leader")
    except client.ApiError as e:
        print(f"error: no Nomad answers ({e}); start it with scripts/up, scripts/cluster up or scripts/deploy",
              file=sys.stderr)
        return 1
    if args.follow:
        return run_follow(nomad, args)
    try:
        allocs = allocations(nomad, args.jobs, running_only=not args.all)
    except client.ApiError as e:
        print(f"error: cannot list allocations: {e}", file=sys.stderr)
        return 1
    if not allocs:
        print(f"error: no {'' if args.all else 'running '}allocations of {', '.join(args.jobs)}", file=sys.stderr)
        return 1
    lines = []
    for stream in streams_of(allocs):
        lines.extend(line for line in read_tail(nomad, stream, args.bytes) if matches(line, args))
    lines.sort()
    if args.lines:
        lines = lines[-args.lines:]
    for line in lines:
        print(render(line, args.json))
    if args.request_id and not lines:
        print(f"no line mentions request id {args.request_id}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:
        sys.exit(0)
