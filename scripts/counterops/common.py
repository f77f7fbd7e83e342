"""What every command prints and how it waits: progress lines on stderr,
errors that end the command with a message, and bounded waits."""

import sys
import time


def log(msg):
    print(f"==> {msg}", file=sys.stderr, flush=True)


def die(msg):
    sys.exit(f"error: {msg}")


def until(what, predicate, timeout, interval=0.5, errors=(OSError, ValueError)):
    """Polls PREDICATE until it returns something true (ERRORS it raises count
    as no) and returns that; ends the command once TIMEOUT seconds passed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if result := predicate():
                return result
        except errors:
            pass
        if time.monotonic() > deadline:
            die(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
