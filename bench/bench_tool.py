"""Speed of the tool itself, in one run on this machine:

    python bench/bench_tool.py [--nodes 1000] [--rounds 5]

- `kflowc build` and `kflowc check` of a generated N-node workflow built in a loop
  (budget: under 5 s for 1,000 nodes), and `kflowc build` of an N-node chain written as
  2N top-level calls (`add_async_code` / `add_connection`, as a generator or a person
  writes a big file; budget: under 3 s for 1,000 nodes), and `kflowc build` of a
  1 -> N -> 1 fan-out and fan-in built in a loop (budget: under 5 s; graph passes that are
  quadratic in a node's fan-out show here first), end to end as a user runs
  them (a fresh process each), against `python -c "import kflow.cli"` (the tool's fixed
  start-up cost) measured in the same rounds;
- importing a generated module that uses no resources, against
  `python -c "import asyncio"` (budget: under 2x).

Cases are interleaved round by round, so a machine whose load changes during the run
moves every case alike; each line gives the median, min-max, and the CPU time
(user + system, the workers' included) beside the wall time.
"""

from __future__ import annotations

import argparse
import os
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


def fan_source(nodes: int) -> str:
    """One source feeding N nodes that one sink reads."""
    return textwrap.dedent(f"""
        from kailash.workflow import AsyncWorkflowBuilder

        builder = AsyncWorkflowBuilder("fan")
        builder.add_async_code("source", "result = seed")
        builder.add_async_code("sink", "result = " + " + ".join(f"x{{i}}" for i in range({nodes})))
        for i in range({nodes}):
            builder.add_async_code(f"m{{i}}", f"result = x + {{i}}")
            builder.add_connection("source", "result", f"m{{i}}", "x")
            builder.add_connection(f"m{{i}}", "result", "sink", f"x{{i}}")
        workflow = builder.build()
    """)


def chain_source(nodes: int) -> str:
    """A chain written out as 2N top-level calls: the file is big, and every call's
    position is looked up in it."""
    lines = [
        "from kailash.workflow import AsyncWorkflowBuilder",
        "",
        'builder = AsyncWorkflowBuilder("chain")',
        "builder.add_async_code(\"n0\", \"result = {'value': seed}\")",
    ]
    for i in range(1, nodes):
        lines.append(f"builder.add_async_code(\"n{i}\", \"total = x['value'] + {i}\\n"
                     f"result = {{'value': total}}\")")
        lines.append(f'builder.add_connection("n{i - 1}", "result", "n{i}", "x")')
    return "\n".join(lines) + "\n"


def timed(*args: str, cwd: Path) -> tuple[float, float]:
    """(wall, cpu) seconds of one run of `args`, its child processes' CPU included."""
    before = os.times()
    started = time.perf_counter()
    subprocess.run(args, cwd=cwd, check=True, capture_output=True)
    wall = time.perf_counter() - started
    after = os.times()
    cpu = (after.children_user - before.children_user
           + after.children_system - before.children_system)
    return wall, cpu


def describe(label: str, runs: list[tuple[float, float]], base: float | None = None,
             budget: str = "") -> str:
    walls = sorted(w for w, _ in runs)
    cpus = sorted(c for _, c in runs)
    median = statistics.median(walls)
    ratio = f", {median / base:.1f}x start-up" if base else ""
    return (f"{label}: median {median:.2f} s (min {walls[0]:.2f}, max {walls[-1]:.2f}); "
            f"CPU median {statistics.median(cpus):.2f} s{ratio}{budget}")


def main(nodes: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "workflow.py").write_text(workflow_source(nodes))
        (work / "chain.py").write_text(chain_source(nodes))
        (work / "fan.py").write_text(fan_source(nodes))
        python = sys.executable
        kflowc = [python, "-m", "kflow.cli"]
        cases = {
            "start-up (python -c 'import kflow.cli')": [python, "-c", "import kflow.cli"],
            f"kflowc build, {nodes} nodes built in a loop": [*kflowc, "build", "workflow.py",
                                                            "-o", "out.py"],
            f"kflowc check, {nodes} nodes built in a loop": [*kflowc, "check", "workflow.py"],
            f"kflowc build, {nodes}-node chain as {2 * nodes - 1} top-level calls":
                [*kflowc, "build", "chain.py", "-o", "chain_out.py"],
            f"kflowc build, 1 -> {nodes} -> 1 fan-out built in a loop":
                [*kflowc, "build", "fan.py", "-o", "fan_out.py"],
        }
        budgets = {1: "; budget < 5 s", 2: "", 3: "; budget < 3 s", 4: "; budget < 5 s"}
        results: dict[str, list[tuple[float, float]]] = {label: [] for label in cases}
        for _ in range(rounds):
            for label, args in cases.items():
                results[label].append(timed(*args, cwd=work))
        labels = list(cases)
        base = statistics.median(w for w, _ in results[labels[0]])
        print(describe(labels[0], results[labels[0]]))
        for index, label in enumerate(labels[1:], 1):
            print(describe(label, results[label], base, budgets[index]))

        (work / "small.py").write_text((REPO / "golden/unit_testing/expected.py").read_text())
        imports: dict[str, list[float]] = {"asyncio": [], "small": []}
        for _ in range(15):
            for name in imports:
                imports[name].append(timed(python, "-c", f"import {name}", cwd=work)[0])
        asyncio_import, module_import = min(imports["asyncio"]), min(imports["small"])
        print(f"python -c 'import asyncio': {asyncio_import * 1e3:.0f} ms; "
              f"import of a generated module: {module_import * 1e3:.0f} ms; "
              f"ratio {module_import / asyncio_import:.2f}x  (best of 15; budget < 2x)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    main(arguments.nodes, arguments.rounds)
