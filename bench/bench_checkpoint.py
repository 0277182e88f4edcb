"""What checkpointing costs: per node commit, and per item of a parallel_map.

    python bench/bench_checkpoint.py [--rounds R] [--nodes N] [--items N] [--workers W]
                                     [--pg DSN] [--every N]

Node commits: a chain of N trivial async nodes (default 200) whose outputs are lists of small
records of about 100 B, 1 KB and 10 KB as JSON, run without a store, with SQLite (the default
synchronous=NORMAL, and FULL for comparison) and with the local PostgreSQL, interleaved,
R rounds. Each node's wall time is taken around "run the node, then commit its outcome";
a store's cost per node is its p50 (p90) minus the no-store p50 (p90) of the same round.
Budgets (issue 12): p50 at most 1 ms on SQLite, 3 ms on PostgreSQL, for outputs up to 10 KB.

Map items: parallel_map over 100,000 trivial async items, with item outcomes handed to an
ItemRecorder as each block of items finishes (through parallel_map's on_batch hook, which the
run without a store also has, doing nothing) against the same map without one. Budget: at
least 0.5x the items/s without a store.

Figures: median over rounds, [min-max] beside; CPU seconds (whole process, the store's
thread included) beside wall.
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

from kflow_runtime.checkpoint import open_run  # noqa: E402
from kflow_runtime.patterns import parallel_map  # noqa: E402

SIZES = {"100 B": 2, "1 KB": 22, "10 KB": 220}  # records of ~45 bytes of JSON each
NODE_BUDGET_MS = {"sqlite": 1.0, "postgresql": 3.0}
MAP_BUDGET = 0.5


def payload(records: int) -> list[dict[str, Any]]:
    return [{"id": k, "name": f"user-{k}", "score": k * 1.5} for k in range(records)]


async def node(rows: list[dict[str, Any]], i: int) -> dict[str, Any]:
    return {"i": i, "rows": rows}


async def chain(url: str | None, rows: list[dict[str, Any]], nodes: int) -> tuple[list[float], float]:
    """Per-node wall times (node + commit) and the CPU seconds of the whole chain."""
    ids = [f"n{i}" for i in range(nodes)]
    session = None
    if url is not None:
        session = await open_run(url, run_id=uuid.uuid4().hex, workflow="bench", inputs={},
                                 fingerprints={n: "f" for n in ids},
                                 upstream={ids[i]: [ids[i - 1]] for i in range(1, nodes)})
    results: dict[str, Any] = {}
    times = []
    cpu = time.process_time()
    try:
        for i, node_id in enumerate(ids):
            started = time.perf_counter()
            output = await node(rows, i)
            results[node_id] = output
            if session is not None:
                await session.node_done(node_id, output=output,
                                        duration=time.perf_counter() - started)
            times.append(time.perf_counter() - started)
    finally:
        cpu = time.process_time() - cpu
        if session is not None:
            await session.close()
    return times, cpu


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def spread(values: list[float], scale: float = 1.0, fmt: str = "{:.3f}") -> str:
    scaled = [v * scale for v in values]
    return (f"{fmt.format(statistics.median(scaled))} "
            f"[{fmt.format(min(scaled))}-{fmt.format(max(scaled))}]")


def bench_nodes(stores: dict[str, str | None], rounds: int, nodes: int) -> dict[str, Any]:
    print(f"\nnode commits: a {nodes}-node chain, {rounds} rounds, interleaved; "
          "added ms per node over no store, median [min-max]")
    print(f"{'store':<22}{'output':>7}{'p50 added':>22}{'p90 added':>22}{'CPU s/chain':>20}")
    verdicts = {}
    kinds = list(stores)
    for label, records in SIZES.items():
        rows = payload(records)
        p50: dict[str, list[float]] = {k: [] for k in kinds}
        p90: dict[str, list[float]] = {k: [] for k in kinds}
        cpu: dict[str, list[float]] = {k: [] for k in kinds}
        for round_no in range(rounds):
            order = kinds[round_no % len(kinds):] + kinds[:round_no % len(kinds)]
            for kind in order:
                gc.collect()
                times, used = asyncio.run(chain(stores[kind], rows, nodes))
                p50[kind].append(pct(times, 0.5))
                p90[kind].append(pct(times, 0.9))
                cpu[kind].append(used)
        for kind in kinds:
            if kind == "none":
                print(f"{'none (per node ms)':<22}{label:>7}{spread(p50[kind], 1e3):>22}"
                      f"{spread(p90[kind], 1e3):>22}{spread(cpu[kind]):>20}")
                continue
            added50 = [a - b for a, b in zip(p50[kind], p50["none"], strict=True)]
            added90 = [a - b for a, b in zip(p90[kind], p90["none"], strict=True)]
            print(f"{kind:<22}{label:>7}{spread(added50, 1e3):>22}{spread(added90, 1e3):>22}"
                  f"{spread(cpu[kind]):>20}")
            budget = NODE_BUDGET_MS.get(kind)  # FULL is shown for comparison, not budgeted
            if budget is not None:
                verdicts[f"{kind} {label}"] = statistics.median(added50) * 1e3 <= budget
    return verdicts


async def map_run(url: str | None, items: list[int], workers: int, every: int,
                  max_pending: int) -> tuple[float, float, int]:
    """(items/s, CPU s, writes) of one parallel_map."""
    session = recorder = None
    if url is not None:
        session = await open_run(url, run_id=uuid.uuid4().hex, workflow="bench", inputs={},
                                 fingerprints={"m": "f"}, upstream={})
        recorder = session.item_recorder("m", every=every, max_pending=max_pending)

    wait = [False]  # set when the recorder says too much waits for the store

    async def process_item(x: int) -> int:
        # The wiring waits for a backlogged store before a worker takes more items; here the
        # next item does. The no-store run pays the same check.
        if wait[0]:
            wait[0] = False
            assert recorder is not None
            await recorder.drain()
        return x + 1

    def on_batch(started: float, ended: float, first: int, size: int) -> None:
        # What parallel_map's wiring hands over when a block ends: its slice of results.
        if recorder is not None and recorder.add(first, size,
                                                 list(range(first + 1, first + size + 1))):
            wait[0] = True

    cpu = time.process_time()
    started = time.perf_counter()
    out = await parallel_map(process_item, items, max_workers=workers, on_batch=on_batch)
    if recorder is not None:
        await recorder.flush()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    assert len(out["results"]) == len(items)
    writes = 0
    if session is not None:
        assert recorder is not None and recorder.stored == len(items)
        writes = recorder.writes
        await session.close()
    return len(items) / elapsed, cpu, writes


def bench_map(stores: dict[str, str | None], rounds: int, count: int, workers: int,
              every: int, max_pending: int) -> dict[str, Any]:
    items = list(range(count))
    kinds = [k for k in stores if "FULL" not in k]
    rate: dict[str, list[float]] = {k: [] for k in kinds}
    cpu: dict[str, list[float]] = {k: [] for k in kinds}
    writes: dict[str, list[int]] = {k: [] for k in kinds}
    ratio: dict[str, list[float]] = {k: [] for k in kinds if k != "none"}
    for round_no in range(rounds):
        order = kinds[round_no % len(kinds):] + kinds[:round_no % len(kinds)]
        got = {}
        for kind in order:
            gc.collect()
            got[kind] = asyncio.run(map_run(stores[kind], items, workers, every, max_pending))
        for kind in kinds:
            rate[kind].append(got[kind][0])
            cpu[kind].append(got[kind][1])
            writes[kind].append(got[kind][2])
            if kind != "none":
                ratio[kind].append(got[kind][0] / got["none"][0])
    print(f"\nmap items: parallel_map of {count:,} trivial items, {workers} workers, commit every "
          f"{every} items, one write in flight, workers wait beyond {max_pending} items not yet "
          f"stored; {rounds} rounds, interleaved")
    print(f"{'store':<22}{'items/s':>28}{'x no store':>22}{'CPU s':>20}{'writes':>10}")
    verdicts = {}
    for kind in kinds:
        shown = spread(ratio[kind], fmt="{:.2f}") if kind != "none" else "1"
        print(f"{kind:<22}{spread(rate[kind], fmt='{:,.0f}'):>28}{shown:>22}"
              f"{spread(cpu[kind]):>20}{int(statistics.median(writes[kind])):>10}")
        if kind in NODE_BUDGET_MS:
            verdicts[f"map {kind}"] = statistics.median(ratio[kind]) >= MAP_BUDGET
    return verdicts


async def pg_reachable(dsn: str) -> str | None:
    try:
        import asyncpg

        conn = await asyncpg.connect(dsn, timeout=5)
        await conn.close()
        return None
    except Exception as exc:  # noqa: BLE001 - reported, then the PostgreSQL rows are left out
        return f"{type(exc).__name__}: {exc}"


async def drop_schema(dsn: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--every", type=int, default=None,
                        help="items per map commit (default: the runtime's ITEMS_PER_COMMIT)")
    parser.add_argument("--max-pending", type=int, default=None,
                        help="items not yet stored before workers wait (default: MAX_PENDING)")
    parser.add_argument("--pg", default=os.environ.get(
        "KFLOW_BENCH_PG_DSN", os.environ.get("KFLOW_TEST_PG_DSN",
                                             "postgresql://postgres@127.0.0.1:5432/test")))
    args = parser.parse_args()
    from kflow_runtime.checkpoint._session import ITEMS_PER_COMMIT, MAX_PENDING

    every = args.every or ITEMS_PER_COMMIT
    max_pending = args.max_pending or MAX_PENDING
    folder = tempfile.mkdtemp(prefix="kflow-bench-")
    stores: dict[str, str | None] = {
        "none": None,
        "sqlite": os.path.join(folder, "normal.db"),
        "sqlite FULL": f"sqlite:///{os.path.join(folder, 'full.db')}?synchronous=full",
    }
    schema = f"kflow_bench_{uuid.uuid4().hex[:8]}"
    problem = asyncio.run(pg_reachable(args.pg))
    if problem is None:
        stores["postgresql"] = f"{args.pg}{'&' if '?' in args.pg else '?'}schema={schema}"
    else:
        print(f"PostgreSQL at {args.pg} not reachable ({problem}): its rows are left out")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; SQLite files in {folder}")
    try:
        verdicts = bench_nodes(stores, args.rounds, args.nodes)
        verdicts.update(bench_map(stores, args.rounds, args.items, args.workers, every,
                                  max_pending))
    finally:
        if problem is None:
            asyncio.run(drop_schema(args.pg, schema))
    print("\nbudgets: " + ", ".join(f"{k}: {'ok' if v else 'OVER'}" for k, v in verdicts.items()))
    return 0 if all(verdicts.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
