"""Per-node overhead of a generated module, as ratios against hand-written asyncio.

    python bench/bench_node_overhead.py [--nodes 1000] [--rounds 9] [--kailash]

Each workflow against its hand-written baseline in the same process:

- a chain of N trivial nodes (`result = x + 1`) with the default 30 s timeout, against
  hand-written asyncio doing the same guarding per node (`asyncio.timeout`, timing, error
  capture, results dict). Budget (issue 15 part 2): <= 1.0x, and <= 3 us a node. Code that
  cannot await is compiled without timeout machinery (nothing could interrupt it), so this
  is also the figure for such nodes against a plain loop, printed beside it;
- a chain of N nodes that await (`result = await step(x)`, `step` a workflow input, the
  same coroutine the hand-written loop awaits) with the default timeout: the run's one
  watchdog timer against `asyncio.timeout` per node. Budget: <= 1.0x;
- the awaiting chain with `timeout=None` on every node, against the loop without
  `asyncio.timeout` (no budget: what the guarding itself costs);
- a wide DAG 1 -> N -> 1 (one source, N independent nodes reading it, one sink reading all
  of them), against plain `asyncio.gather` over N coroutines between a source and a sink
  call. Budget: <= 1.5x. Twice: with trivial middle nodes (`result = x + 1`), and with
  middle nodes that await (`result = await step(x)`), which must each run in a task of
  their own (docs/running.md, "Stages"); the awaiting one is also set beside a gather whose
  branches each run under `asyncio.timeout`, the same guarding by hand.

A bare `await step(x)` loop is printed for scale. Every contender runs once per round, in
alternating order (bench/_map_bench.py: ABAB, then BABA), on one event loop; each ratio is
taken per round against the baseline of the same round and summarised as median (min-max),
for wall time and for the process's CPU time beside it (this 2-vCPU VM is shared).

`--kailash` also times kailash's own AsyncLocalRuntime on the chain when it is installed
(budget: at least 50x slower than the generated module), after the rounds: importing it
slows this process's event loop, which would be charged to the contenders above.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _map_bench import Spread, Timing, interleaved  # noqa: E402

from kflow import AsyncLocalRuntime, AsyncWorkflowBuilder  # noqa: E402


def chain_workflow(n: int, timeout: float | None = 30, *, awaiting: bool = False):
    code = "result = await step(x)" if awaiting else "result = x + 1"
    builder = AsyncWorkflowBuilder("chain")
    builder.add_async_code("n0", "result = 0", timeout=timeout)
    for i in range(1, n):
        builder.add_async_code(f"n{i}", code, timeout=timeout)
        builder.add_connection(f"n{i - 1}", "result", f"n{i}", "x")
    return builder.build()


def wide_workflow(n: int, *, awaiting: bool = False):
    builder = AsyncWorkflowBuilder("wide")
    builder.add_async_code("source", "result = 1")
    sink = "result = " + " + ".join(f"x{i}" for i in range(n))
    for i in range(n):
        builder.add_async_code(f"m{i}", "result = await step(x)" if awaiting else "result = x + 1")
        builder.add_connection("source", "result", f"m{i}", "x")
    builder.add_async_code("sink", sink)
    for i in range(n):
        builder.add_connection(f"m{i}", "result", "sink", f"x{i}")
    return builder.build()


async def step(x):
    return x + 1


async def hand_chain(n: int, timeout: float | None) -> dict:
    """What a careful person would write by hand with the same per-node guarding."""
    results: dict = {}
    errors: dict = {}
    times: dict = {}
    x = 0
    for i in range(n):
        name = f"n{i}"
        started = time.perf_counter()
        try:
            if timeout is None:
                x = await step(x) if i else 0
            else:
                async with asyncio.timeout(timeout):
                    x = await step(x) if i else 0
            results[name] = x
        except Exception as exc:  # noqa: BLE001
            errors[name] = f"{type(exc).__name__}: {exc}"
            break
        times[name] = time.perf_counter() - started
    return {"results": results, "errors": errors, "execution_times": times}


async def bare_chain(n: int) -> int:
    x = 0
    for _ in range(n):
        x = await step(x)
    return x


async def hand_wide(n: int) -> int:
    """1 -> N -> 1 with plain asyncio.gather and nothing else."""
    source = await step(0)
    middle = await asyncio.gather(*(step(source) for _ in range(n)))
    return sum(middle)


async def hand_wide_timed(n: int) -> int:
    """The same with each branch under its own asyncio.timeout, as guarded by hand."""
    async def guarded(x: int) -> int:
        async with asyncio.timeout(30.0):
            return await step(x)

    source = await step(0)
    middle = await asyncio.gather(*(guarded(source) for _ in range(n)))
    return sum(middle)


def ratios(base: list[Timing], other: list[Timing]) -> tuple[Spread, Spread]:
    """Per-round time of `other` over `base` (<1: `other` faster), by wall and by CPU."""
    wall = [o.wall / b.wall for b, o in zip(base, other, strict=True)]
    cpu = [o.cpu / b.cpu for b, o in zip(base, other, strict=True)]
    return Spread.of(wall), Spread.of(cpu)


def per_node(timings: list[Timing], nodes: int) -> str:
    wall = statistics.median(t.wall for t in timings) / nodes * 1e6
    cpu = statistics.median(t.cpu for t in timings) / nodes * 1e6
    return f"{wall:6.2f} us/node (CPU {cpu:5.2f})"


def compare(title: str, loop: asyncio.AbstractEventLoop, base: tuple[str, Callable[[], Awaitable]],
            ours: tuple[str, Callable[[], Awaitable]], nodes: int, rounds: int,
            budget: float | None, extra: dict[str, Callable[[], Awaitable]] | None = None) -> None:
    contenders = {label: (lambda fn=fn: loop.run_until_complete(fn()))
                  for label, fn in (base, ours, *(extra or {}).items())}
    for run in contenders.values():  # warm-up, untimed
        run()
    timings = interleaved(contenders, rounds)
    wall, cpu = ratios(timings[base[0]], timings[ours[0]])
    print(f"{title} ({nodes} nodes, {rounds} rounds)")
    for label, measured in timings.items():
        print(f"  {label:44s} {per_node(measured, nodes)}")
    verdict = ""
    if budget is not None:
        verdict = f"  budget <= {budget}x: {'ok' if wall.median <= budget else 'MISSED'}"
    print(f"  ratio kflow / baseline: wall {wall}, CPU {cpu}{verdict}")
    for label in extra or {}:
        wall, cpu = ratios(timings[label], timings[ours[0]])
        print(f"  ratio kflow / {label}: wall {wall}, CPU {cpu}")
    print()


def kailash_chain(n: int):
    """The same chain on the interpreting runtime our users run today, if installed.

    Its code nodes receive the upstream node's whole output ({"result": value})."""
    try:
        from kailash.runtime import AsyncLocalRuntime as KailashRuntime
        from kailash.workflow import AsyncWorkflowBuilder as KailashBuilder
    except ImportError:
        return None
    builder = KailashBuilder("chain")
    builder.add_async_code("n0", "result = 0")
    for i in range(1, n):
        builder.add_async_code(f"n{i}", "result = x['result'] + 1")
        builder.add_connection(f"n{i - 1}", "result", f"n{i}", "x")
    workflow, runtime = builder.build(), KailashRuntime()
    return lambda: runtime.execute_workflow_async(workflow, {})


def main(nodes: int, rounds: int, kailash: bool) -> None:
    runtime = AsyncLocalRuntime()
    # Compiled once, as a shipped module would be.
    trivial_chain = runtime.module(chain_workflow(nodes))
    timed_chain = runtime.module(chain_workflow(nodes, awaiting=True))
    untimed_chain = runtime.module(chain_workflow(nodes, timeout=None, awaiting=True))
    wide = runtime.module(wide_workflow(nodes))
    awaiting_wide = runtime.module(wide_workflow(nodes, awaiting=True))
    given = {"step": step}
    loop = asyncio.new_event_loop()
    try:
        for module, last, value in ((trivial_chain, f"n{nodes - 1}", nodes - 1),
                                    (timed_chain, f"n{nodes - 1}", nodes - 1),
                                    (untimed_chain, f"n{nodes - 1}", nodes - 1),
                                    (wide, "sink", 2 * nodes),
                                    (awaiting_wide, "sink", 2 * nodes)):
            envelope = loop.run_until_complete(module.run(dict(given)))
            assert envelope["status"] == "success", envelope["errors"]
            assert envelope["results"][last] == value
        print(f"python {sys.version.split()[0]}; median (min-max) over rounds\n")
        compare("chain of trivial nodes (result = x + 1), default timeout", loop,
                ("hand-written, asyncio.timeout per node", lambda: hand_chain(nodes, 30.0)),
                ("kflow generated module", lambda: trivial_chain.run({})), nodes, rounds, 1.0,
                {"hand-written, no timeout": lambda: hand_chain(nodes, None),
                 "bare `await step(x)` (for scale)": lambda: bare_chain(nodes)})
        compare("chain of awaiting nodes (result = await step(x)), default timeout", loop,
                ("hand-written, asyncio.timeout per node", lambda: hand_chain(nodes, 30.0)),
                ("kflow generated module", lambda: timed_chain.run(dict(given))), nodes,
                rounds, 1.0)
        compare("chain of awaiting nodes, timeout=None on every node", loop,
                ("hand-written, no timeout", lambda: hand_chain(nodes, None)),
                ("kflow generated module", lambda: untimed_chain.run(dict(given))), nodes,
                rounds, None)
        compare("wide DAG 1 -> N -> 1", loop,
                ("plain asyncio.gather", lambda: hand_wide(nodes)),
                ("kflow generated module", lambda: wide.run({})), nodes, rounds, 1.5)
        compare("wide DAG 1 -> N -> 1, middle nodes awaiting step(x)", loop,
                ("plain asyncio.gather", lambda: hand_wide(nodes)),
                ("kflow generated module", lambda: awaiting_wide.run(dict(given))), nodes,
                rounds, 1.5,
                {"gather, asyncio.timeout per branch": lambda: hand_wide_timed(nodes)})
        if kailash:
            run = kailash_chain(nodes)
            if run is None:
                print("kailash not installed: its runtime is not measured (pip install kailash)")
                return
            contenders = {"kflow": lambda: loop.run_until_complete(trivial_chain.run({})),
                          "kailash": lambda: loop.run_until_complete(run())}
            timings = interleaved(contenders, max(3, rounds // 3))
            factor = [k.wall / f.wall for f, k in zip(timings["kflow"], timings["kailash"],
                                                      strict=True)]
            print(f"kailash AsyncLocalRuntime / kflow on the chain: {Spread.of(factor)} "
                  "(budget >= 50x)")
    finally:
        loop.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--kailash", action="store_true")
    args = parser.parse_args()
    main(args.nodes, args.rounds, args.kailash)
