"""The hostile-input cases of tests/hostile, sent through Traefik on the local stack.

Traefik answers some of them itself (its own 400s, 431s); the rest reach the
services. Either way: a 4xx or a closed connection, never a 2xx or 5xx, the
stack still serves GET /, and the count in Redis is unchanged.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hostile"))
import hostile  # noqa: E402


def test_hostile_input_through_the_gateway_gets_4xx_or_a_close_and_changes_nothing():
    n, failures = hostile.suite("127.0.0.1", 8080, ("127.0.0.1", 6380), "gateway", seed=7, workers=24)
    assert n >= 200
    assert not failures, f"{len(failures)} of {n} hostile cases failed:\n" + "\n".join(failures)
