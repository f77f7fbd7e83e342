"""scripts/env: shell lines that point the nomad and consul CLIs at a
deployment, with its management tokens read from their files when the lines
run (printing them shows no secret):

    eval "$(scripts/env)"               # the local stack (scripts/up)
    eval "$(scripts/env -i my.yml)"     # a cluster deployed with scripts/deploy
"""

import argparse
import sys

from . import target


def main():
    p = argparse.ArgumentParser(prog="scripts/env", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n")[1])
    target.add_arguments(p)
    args = p.parse_args()
    try:
        t = target.from_args(args)
    except target.TargetError as err:
        sys.exit(f"error: {err}")
    if not (t.secrets / "nomad-management.token").exists():
        sys.exit(f"error: no tokens in {t.secrets}: "
                 + ("start the local stack with scripts/up first" if t.kind == "local" else "deploy it first"))
    print(t.env_lines())


if __name__ == "__main__":
    main()
