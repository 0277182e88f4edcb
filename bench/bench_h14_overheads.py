"""What issue 14's additions cost, as ratios against the same code with them switched off,
interleaved in one process (median and min-max over rounds, CPU time beside wall time).

    python bench/bench_h14_overheads.py [--rounds 7]

- build: analysing (and black-formatting) 200 code strings whose statements span lines,
  with and without the expression-level source map (`expression_lines`, issue 14.5);
- run: setting up the resources of one run, with and without the scan of the environment
  for misspelt KFLOW_* overrides (issue 14.12), and a 20-node chain's run with and without
  the bookkeeping of inputs read (misspelt optional inputs).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Callable

import kflow.code_analysis as code_analysis
import kflow_runtime.resources as resources
import kflow_runtime.run as run_module
from kflow import AsyncLocalRuntime, AsyncWorkflowBuilder
from kflow.ir import CodeBlock, SourceLocation

CODE = '''
total = {
    "a": values[0],
    "b": sum(
        v * 2
        for v in values
    ),
}
result = send(
    total,
    extra,
)
'''


def timed(fn: Callable[[], None]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def build_job(expressions: bool) -> Callable[[], None]:
    def job() -> None:
        original = code_analysis._expression_lines
        if not expressions:
            code_analysis._expression_lines = lambda *a: ()
        try:
            for i in range(200):
                block = CodeBlock(CODE + f"# {i}\n", SourceLocation("w.py", 10, 4), exact=True)
                code_analysis.analyse_code(block, f"n{i}", format=True)
        finally:
            code_analysis._expression_lines = original
    return job


def resources_job(scan: bool) -> Callable[[], None]:
    specs = {"db": resources.Database("db", {"host": "h"}),
             "api": resources.HttpClient("api", {"base_url": "http://x"})}

    def job() -> None:
        original = resources.warn_unknown_overrides
        if not scan:
            resources.warn_unknown_overrides = lambda *a: []
        try:
            for _ in range(2000):
                resources.Resources(specs, environ=os.environ)
        finally:
            resources.warn_unknown_overrides = original
    return job


def chain_job(track: bool) -> Callable[[], None]:
    builder = AsyncWorkflowBuilder("chain")
    builder.add_async_code("n0", "result = start")
    for i in range(1, 20):
        builder.add_async_code(f"n{i}", f"result = x + globals().get('step{i}', 1)")
        builder.add_connection(f"n{i - 1}", "result", f"n{i}", "x")
    module = AsyncLocalRuntime().module(builder.build())

    async def many() -> None:
        for _ in range(300):
            await module.run({"start": 1})

    def job() -> None:
        original = run_module._warn_misspelt
        if not track:
            run_module._warn_misspelt = lambda *a: None
        try:
            asyncio.run(many())
        finally:
            run_module._warn_misspelt = original
    return job


def compare(label: str, new: Callable[[], None], old: Callable[[], None], rounds: int) -> None:
    new(), old()  # warm caches and imports
    ratios, cpu_ratios, walls = [], [], []
    for _ in range(rounds):
        (nw, nc), (ow, oc) = timed(new), timed(old)
        ratios.append(nw / ow)
        cpu_ratios.append(nc / oc)
        walls.append(nw)
    print(f"{label}: wall ratio median {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f}); CPU ratio median "
          f"{statistics.median(cpu_ratios):.3f} (min {min(cpu_ratios):.3f}, "
          f"max {max(cpu_ratios):.3f}); with it: {statistics.median(walls) * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    rounds = parser.parse_args().rounds
    compare("build, 200 multi-line code strings (expression lines on/off)",
            build_job(True), build_job(False), rounds)
    compare("2000 resource set-ups (KFLOW_* scan on/off)", resources_job(True),
            resources_job(False), rounds)
    compare("300 runs of a 20-node chain (misspelt-input check on/off)", chain_job(True),
            chain_job(False), rounds)


if __name__ == "__main__":
    main()
