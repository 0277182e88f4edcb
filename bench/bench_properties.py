"""A long search of the compiler's property tests (tests/test_properties.py):

    python bench/bench_properties.py [--examples 2000]

The test suite runs them with a CI-sized number of examples; this runs the same
properties over many more random workflow IRs (the example count of the slow property,
the one that starts interpreters, is a thirtieth of it) and prints pytest's summary.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main(examples: int) -> int:
    env = {**os.environ, "KFLOW_PROPERTY_EXAMPLES": str(examples)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--hypothesis-show-statistics", str(REPO / "tests" / "test_properties.py")],
        cwd=REPO, env=env,
    ).returncode


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    raise SystemExit(main(parser.parse_args().examples))
