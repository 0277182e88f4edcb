"""`python -m kflow script.py [args]`: run a script written with the guide's imports.

The script runs as `__main__` with `kailash.*` giving kflow's API where the real
Kailash SDK is not installed (see `kflow.aliases`), so the guide's examples run
as written. The compiler itself is `kflowc` (or `python -m kflow.cli`).
"""

from __future__ import annotations

import os
import runpy
import sys

USAGE = """\
usage: python -m kflow SCRIPT [ARG ...]

Run SCRIPT (a Python file written with the guide's imports, e.g.
`from kailash.workflow import AsyncWorkflowBuilder`) with those imports giving
kflow's API. To compile a workflow into a module, use `kflowc build workflow.py -o out.py`.
"""


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, end="", file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    script = argv[0]
    if not os.path.isfile(script):
        print(f"error: no script at {script!r}\n\n{USAGE}", end="", file=sys.stderr)
        return 2
    from kflow import aliases

    if not aliases.kailash_is_real():
        aliases.install()
    sys.argv = list(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
