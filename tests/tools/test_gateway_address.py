"""prometheus/gateway-address.sh, which the exporters job runs for the node
exporter's textfile collector: 1 while one of this host's interfaces holds
the floating gateway address, else 0 (read from `ip -o -4 addr show`, here
faked on PATH so the test needs no address of its own)."""

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "prometheus/gateway-address.sh"
IP_OUTPUT = """1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
2: host0    inet 198.18.0.11/24 brd 198.18.0.255 scope global host0\\       valid_lft forever preferred_lft forever
2: host0    inet 198.18.0.100/24 scope global secondary host0\\       valid_lft forever preferred_lft forever
"""


def held(tmp_path, address):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "ip"
    fake.write_text(f"#!/bin/sh\ncat <<'END'\n{IP_OUTPUT}END\n")
    fake.chmod(0o755)
    out = tmp_path / "textfile" / "gateway-address.prom"
    subprocess.run(["sh", str(SCRIPT), address, str(out)], check=True,
                   env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    lines = out.read_text().splitlines()
    assert lines[0].startswith("# HELP counter_gateway_address_held") and len(lines) == 3, lines
    assert not out.with_name(out.name + ".tmp").exists()
    return lines[2]


def test_the_holder_reports_1_and_any_other_host_0(tmp_path):
    assert held(tmp_path, "198.18.0.100") == 'counter_gateway_address_held{address="198.18.0.100"} 1'
    assert held(tmp_path, "198.18.0.10") == 'counter_gateway_address_held{address="198.18.0.10"} 0'
    # A longer address that starts with this one is another address.
    assert held(tmp_path, "198.18.0.1") == 'counter_gateway_address_held{address="198.18.0.1"} 0'
