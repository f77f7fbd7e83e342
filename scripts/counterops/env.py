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
    description, epilog = __doc__.split("\n\n")
    p = argparse.ArgumentParser(prog="scripts/env", description=description, epilog=epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    target.add_arguments(p)
    try:
        t = target.from_args(p.parse_args())
    except target.TargetError as err:
        sys.exit(f"error: {err}")
    if not (t.secrets / "nomad-management.token").exists():
        sys.exit(f"error: no tokens in {t.secrets}: "
                 + ("start the local stack with scripts/up first" if t.kind == "local" else "deploy it first"))
    print(t.env_lines())


if __name__ == "__main__":
    main()
