"""scripts/lib.sh: a command that ends a script under `set -e` is named on
stderr, even when its own message went to /dev/null; a failure that ends
nothing (inside $(...), in a condition) prints nothing."""

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def bash(tmp_path: Path, body: str) -> subprocess.CompletedProcess:
    script = tmp_path / "script.sh"
    script.write_text(f'set -euo pipefail\n. "{REPO}/scripts/lib.sh"\n{body}\n')
    return subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=30)


def test_a_silent_failure_that_ends_the_script_is_named(tmp_path):
    p = bash(tmp_path, 'quiet() { grep -q anything /nonexistent/file 2>/dev/null; echo unreachable; }\nquiet')
    assert p.returncode == 2
    assert "unreachable" not in p.stdout
    # bash prints the command as it parsed it ("2> /dev/null").
    assert "script.sh line 3: `grep -q anything /nonexistent/file 2> /dev/null` failed (exit 2)" in p.stderr, p.stderr


def test_failures_that_end_nothing_print_nothing(tmp_path):
    p = bash(tmp_path, 'x=$(false; echo inside)\n'
             'if ! grep -q anything /nonexistent/file 2>/dev/null; then echo handled; fi\n'
             'false || true\n'
             'echo "done $x"')
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["handled", "done", "inside"]
    assert p.stderr == ""
