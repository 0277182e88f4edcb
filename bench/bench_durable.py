"""What a durable run costs, end to end: generated modules run with and without a store.

    python bench/bench_durable.py [--rounds R] [--nodes N] [--items N] [--pg DSN] [--no-orjson]

Chain: a workflow of N code nodes (default 200) in one chain, each returning about 100 B,
1 KB or 10 KB of JSON, compiled by kflow and run through its `run()` without a store, with
a SQLite file (synchronous=NORMAL, the default) and with the local PostgreSQL, interleaved,
R rounds. Each node's wall time is taken by an observer from its start to the next node's
start (so it covers the commit of its outcome); a store's cost per node is its p50 minus the
no-store p50 of the same round. Budgets (issue 12): at most 1 ms per node on SQLite, 3 ms on
PostgreSQL, for outputs up to 10 KB.

Map: a generated module whose parallel_map node runs 100,000 async items (the runtime's own
chunking: docs/durable.md), trivial ones (`return i + 1`: the hardest case, items cost less
than rendering their results as JSON) and ones that await once (as I/O does), its items/s
taken from the map node's execution time, with a store against without. Budget: at least
0.5x the items/s without a store.

Also shown: the whole run's speed with a store against without (the store's opening, the
commit of the map's results as its output and of the final envelope are paid once a run).

Figures: median over rounds, [min-max] beside; CPU seconds of the whole process (the SQLite
store's thread included) beside wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
if "--no-orjson" in sys.argv:  # before anything imports the store (bench_checkpoint does)
    sys.modules["orjson"] = None  # type: ignore[assignment]  # import orjson now fails

# The store bench's PostgreSQL helpers (bench/ is on the path when a bench runs).
from bench_checkpoint import drop_schema, pg_reachable  # noqa: E402

from kflow import AsyncWorkflowBuilder, compile_workflow  # noqa: E402
from kflow.runtime import load_module  # noqa: E402

SIZES = {"100 B": 2, "1 KB": 22, "10 KB": 220}  # records of ~45 bytes of JSON each
NODE_BUDGET_MS = {"sqlite": 1.0, "postgresql": 3.0}
MAP_BUDGET = 0.5


def chain_module(nodes: int, records: int) -> Any:
    builder = AsyncWorkflowBuilder(f"bench_chain_{records}")
    code = ("result = {'prev': len(x['rows']) if x else 0, 'rows': "
            f"[{{'id': k, 'name': f'user-{{k}}', 'score': k * 1.5}} for k in range({records})]}}")
    first = code.replace("len(x['rows']) if x else 0", "0")
    builder.add_async_code("n0", first)
    for i in range(1, nodes):
        builder.add_async_code(f"n{i}", code)
        builder.add_connection(f"n{i - 1}", "result", f"n{i}", "x")
    workflow = builder.build()
    return load_module(compile_workflow(workflow).source, workflow.name)


MAP_ITEMS = {
    "trivial": "async def process_item(i):\n    return i + 1\n",
    # One suspension per item, as an item awaiting I/O has: the workers then compete.
    "awaits once": "async def process_item(i):\n    await asyncio.sleep(0)\n    return i + 1\n",
}


def map_module(items: int, code: str) -> Any:
    builder = AsyncWorkflowBuilder("bench_map")
    builder.add_async_code("load", f"result = list(range({items}))")
    builder.add_parallel_map("m", code, max_workers=50)
    builder.add_connection("load", "result", "m", "items")
    workflow = builder.build()
    return load_module(compile_workflow(workflow).source, workflow.name)


class NodeTimes:
    """Observer: in a chain, from one node's start to the next one's, which covers the node,
    the commit of its outcome and the hand-over to the next."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None

    def node_started(self, node_id: str, at: float) -> None:
        self.starts.append(at)

    @property
    def times(self) -> list[float]:
        return [b - a for a, b in zip(self.starts[:-1], self.starts[1:], strict=True)]


def store_for(kind: str, folder: str, pg: str | None) -> str | None:
    if kind == "none":
        return None
    if kind == "sqlite":
        return os.path.join(folder, "runs.db")
    assert pg is not None
    return pg


async def run_once(module: Any, store: str | None, observer: Any = None
                   ) -> tuple[dict, float, float]:
    options: dict[str, Any] = {}
    if store is not None:
        options.update(checkpoint=store, run_id=uuid.uuid4().hex)
    if observer is not None:
        options["observer"] = observer
    cpu = time.process_time()
    wall = time.perf_counter()
    envelope = await module.run({}, **options)
    assert envelope["status"] == "success", envelope["errors"]
    return envelope, time.process_time() - cpu, time.perf_counter() - wall


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def spread(values: list[float], scale: float = 1.0, fmt: str = "{:.3f}") -> str:
    scaled = [v * scale for v in values]
    return (f"{fmt.format(statistics.median(scaled))} "
            f"[{fmt.format(min(scaled))}-{fmt.format(max(scaled))}]")


def interleaved(kinds: list[str], rounds: int) -> list[list[str]]:
    return [kinds[r % len(kinds):] + kinds[:r % len(kinds)] for r in range(rounds)]


def bench_chain(kinds: list[str], stores: dict[str, str | None], rounds: int,
                nodes: int) -> dict[str, bool]:
    print(f"\nchain: {nodes} code nodes, {rounds} rounds interleaved; per node ms (none) and "
          "ms added per node over no store, median [min-max]")
    print(f"{'store':<12}{'output':>7}{'p50':>24}{'p90':>24}{'CPU s/run':>22}")
    verdicts = {}
    for label, records in SIZES.items():
        module = chain_module(nodes, records)
        p50: dict[str, list[float]] = {k: [] for k in kinds}
        p90: dict[str, list[float]] = {k: [] for k in kinds}
        cpu: dict[str, list[float]] = {k: [] for k in kinds}
        asyncio.run(run_once(module, None))  # warm: imports, first compile of the code
        for order in interleaved(kinds, rounds):
            for kind in order:
                gc.collect()
                observer = NodeTimes()
                _, used, _ = asyncio.run(run_once(module, stores[kind], observer))
                p50[kind].append(pct(observer.times, 0.5))
                p90[kind].append(pct(observer.times, 0.9))
                cpu[kind].append(used)
        for kind in kinds:
            if kind == "none":
                print(f"{'none':<12}{label:>7}{spread(p50[kind], 1e3):>24}"
                      f"{spread(p90[kind], 1e3):>24}{spread(cpu[kind]):>22}")
                continue
            added50 = [a - b for a, b in zip(p50[kind], p50["none"], strict=True)]
            added90 = [a - b for a, b in zip(p90[kind], p90["none"], strict=True)]
            print(f"{kind:<12}{label:>7}{spread(added50, 1e3):>24}{spread(added90, 1e3):>24}"
                  f"{spread(cpu[kind]):>22}")
            verdicts[f"chain {kind} {label}"] = (statistics.median(added50) * 1e3
                                                 <= NODE_BUDGET_MS[kind])
    return verdicts


def bench_map(kinds: list[str], stores: dict[str, str | None], rounds: int,
              items: int, label: str) -> dict[str, bool]:
    module = map_module(items, MAP_ITEMS[label])
    asyncio.run(run_once(module, None))
    rate: dict[str, list[float]] = {k: [] for k in kinds}
    cpu: dict[str, list[float]] = {k: [] for k in kinds}
    ratio: dict[str, list[float]] = {k: [] for k in kinds if k != "none"}
    # The whole run beside the map: opening the store, committing the map's 100,000
    # results as its output and the final envelope (it holds them too) cost once per run.
    whole: dict[str, list[float]] = {k: [] for k in kinds}
    for order in interleaved(kinds, rounds):
        got = {}
        walls = {}
        for kind in order:
            gc.collect()
            envelope, used, walls[kind] = asyncio.run(run_once(module, stores[kind]))
            got[kind] = items / envelope["execution_times"]["m"]
            cpu[kind].append(used)
        for kind in kinds:
            rate[kind].append(got[kind])
            whole[kind].append(walls["none"] / walls[kind])
            if kind != "none":
                ratio[kind].append(got[kind] / got["none"])
    print(f"\nmap: parallel_map of {items:,} items ({label}), 50 workers, {rounds} rounds "
          "interleaved; the map node's items/s, median [min-max]; the whole run's speed")
    print(f"{'store':<12}{'items/s':>30}{'x no store':>22}{'run x no store':>22}"
          f"{'CPU s/run':>22}")
    verdicts = {}
    for kind in kinds:
        shown = spread(ratio[kind], fmt="{:.2f}") if kind != "none" else "1"
        run_shown = spread(whole[kind], fmt="{:.2f}") if kind != "none" else "1"
        print(f"{kind:<12}{spread(rate[kind], fmt='{:,.0f}'):>30}{shown:>22}{run_shown:>22}"
              f"{spread(cpu[kind]):>22}")
        if kind != "none":
            verdicts[f"map {label} {kind}"] = statistics.median(ratio[kind]) >= MAP_BUDGET
    return verdicts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--pg", default=os.environ.get(
        "KFLOW_BENCH_PG_DSN", os.environ.get("KFLOW_TEST_PG_DSN",
                                             "postgresql://postgres@127.0.0.1:5432/test")))
    parser.add_argument("--no-orjson", action="store_true",
                        help="render with the standard library's json, as without [durable]")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="kflow-bench-durable-")
    schema = f"kflow_bench_{uuid.uuid4().hex[:8]}"
    problem = asyncio.run(pg_reachable(args.pg))
    kinds = ["none", "sqlite"]
    pg = None
    if problem is None:
        kinds.append("postgresql")
        pg = f"{args.pg}{'&' if '?' in args.pg else '?'}schema={schema}"
    else:
        print(f"PostgreSQL at {args.pg} not reachable ({problem}): its rows are left out")
    stores = {kind: store_for(kind, folder, pg) for kind in kinds}
    from kflow_runtime.checkpoint import _codec

    encoder = ("orjson" if _codec._fast_dumps is not None
               else "json (no orjson: as without kflow-runtime[durable])")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.1f}; SQLite file in {folder}; outputs rendered by {encoder}")
    try:
        verdicts = bench_chain(kinds, stores, args.rounds, args.nodes)
        for label in MAP_ITEMS:
            verdicts.update(bench_map(kinds, stores, args.rounds, args.items, label))
    finally:
        if problem is None:
            asyncio.run(drop_schema(args.pg, schema))
    print("\nbudgets: " + ", ".join(f"{k}: {'ok' if v else 'OVER'}" for k, v in verdicts.items()))
    return 0 if all(verdicts.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
