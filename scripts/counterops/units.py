"""The systemd units of systemd/, read the way systemd would run them, for
the local stack: it runs Redis, Sentinel, Consul, the role watch and Nomad
from the very Exec lines of these units (this machine's PID 1 need not be
systemd), with the units' absolute paths mapped into this user's cache and
checkout, so the units and the local stack cannot drift:

  /usr/local/bin/         -> $COUNTER_CACHE/bin/      (nomad, consul: scripts/install)
  /usr/local/bin/counter-* -> redis/counter-*          (this checkout's helpers)
  /usr/local/lib/counter  -> scripts                  (the ops package: the role watch)
  /etc/counter/           -> $COUNTER_STATE/etc/      (configs rendered by counterops.render)
  /var/lib/counter/       -> $COUNTER_STATE/data/     (each unit's StateDirectory=)

Only what a word-by-word runner reproduces faithfully is accepted: a line
with quotes, $VARIABLES or specifiers other than %i is refused by name.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from .target import BIN, LOCAL_STATE

ROOT = Path(__file__).resolve().parents[2]
ETC, DATA = LOCAL_STATE / "etc", LOCAL_STATE / "data"
MAP = [("/usr/local/bin/counter-", f"{ROOT}/redis/counter-"), ("/usr/local/bin/", f"{BIN}/"),
       ("/usr/local/lib/counter", f"{ROOT}/scripts"), ("/etc/counter/", f"{ETC}/"),
       ("/var/lib/counter/", f"{DATA}/")]


class UnitError(Exception):
    pass


def local_path(word):
    """A word of a unit's line with the unit's system paths replaced by the
    local stack's places."""
    for system, local in MAP:
        if system in word:
            return word.replace(system, local)
    return word


@dataclass
class Unit:
    file: str
    instance: str = ""

    def values(self, key):
        """Every value of KEY= in the unit, %i filled in."""
        path = ROOT / "systemd" / self.file
        out = []
        for line in path.read_text().splitlines():
            if line.startswith(key + "="):
                value = line[len(key) + 1:].replace("%i", self.instance)
                if re.search(r"[\"'$%\\]", value):
                    raise UnitError(f"systemd/{self.file}: '{key}={value}' uses quotes, $, % or \\; the local "
                                    "stack runs unit lines word by word, keep them plain")
                out.append(value)
        return out

    def commands(self, key):
        """[(argv, ignore failure)] of the unit's KEY= lines (ExecStartPre...)."""
        return [([local_path(w) for w in v.lstrip("-").split()], v.startswith("-")) for v in self.values(key)]

    def command(self):
        lines = self.commands("ExecStart")
        if len(lines) != 1:
            raise UnitError(f"systemd/{self.file}: expected exactly one ExecStart=")
        return lines[0][0]

    def state_dirs(self):
        return [DATA / d.removeprefix("counter/") for d in self.values("StateDirectory")]

    def environment(self):
        """Environment= and EnvironmentFile= (a leading - : the file may be missing)."""
        env = {}
        for file in self.values("EnvironmentFile"):
            path = Path(local_path(file.lstrip("-")))
            if not path.exists() and file.startswith("-"):
                continue
            for line in path.read_text().splitlines():
                key, sep, value = line.partition("=")
                if sep and not line.startswith("#"):
                    env[key.strip()] = value.strip()
        for value in self.values("Environment"):
            key, _, v = value.partition("=")
            env[key] = local_path(v)
        return env

    def kill_signal(self):
        return (self.values("KillSignal") or ["SIGTERM"])[-1]
