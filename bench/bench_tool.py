"""Speed of the tool itself, in one run on this machine:

    python bench/bench_tool.py [--nodes 1000]

- `kflowc build` and `kflowc check` of a generated N-node workflow (budget: under 5 s
  for 1,000 nodes), end to end as a user runs them (a fresh process each);
- importing a generated module that uses no resources, against
  `python -c "import asyncio"` (budget: under 2x).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def workflow_source(nodes: int) -> str:
    """A generated workflow: a chain of small but distinct code nodes, with fan-out."""
    return textwrap.dedent(f"""
        from kailash.workflow import AsyncWorkflowBuilder

        builder = AsyncWorkflowBuilder("generated")
        builder.add_async_code("n0", "result = {{'value': seed, 'items': [1, 2, 3]}}")
        for i in range(1, {nodes}):
            builder.add_async_code(
                f"n{{i}}",
                f"total_{{i}} = x['value'] + {{i}}\\n"
                f"if total_{{i}} < 0:\\n"
                f"    raise ValueError('negative')\\n"
                f"result = {{{{'value': total_{{i}}, 'items': x['items']}}}}",
            )
            builder.add_connection(f"n{{(i - 1) // 2}}", "result", f"n{{i}}", "x")
        workflow = builder.build()
    """)


def timed(*args: str, cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(args, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - started


def best(fn, runs: int = 3) -> float:
    return min(fn() for _ in range(runs))


def spread(fn, runs: int = 5) -> tuple[float, float, float]:
    """(best, median, worst): the machine's load moves single figures by a second."""
    times = sorted(fn() for _ in range(runs))
    return times[0], statistics.median(times), times[-1]


def main(nodes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "workflow.py").write_text(workflow_source(nodes))
        kflowc = [sys.executable, "-m", "kflow.cli"]
        for command in ("build", "check"):
            args = ("-o", "out.py") if command == "build" else ()
            low, median, high = spread(
                lambda command=command, args=args: timed(*kflowc, command, "workflow.py", *args,
                                                         cwd=work))
            print(f"kflowc {command}, {nodes} nodes: median {median:.2f} s "
                  f"(best {low:.2f}, worst {high:.2f}; budget < 5 s)")

        (work / "small.py").write_text((REPO / "golden/unit_testing/expected.py").read_text())
        python = [sys.executable, "-c"]
        asyncio_import = best(lambda: timed(*python, "import asyncio", cwd=work), 15)
        module_import = best(lambda: timed(*python, "import small", cwd=work), 15)
        print(f"python -c 'import asyncio': {asyncio_import * 1e3:.0f} ms; "
              f"import of a generated module: {module_import * 1e3:.0f} ms; "
              f"ratio {module_import / asyncio_import:.2f}x  (budget < 2x)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    main(parser.parse_args().nodes)
