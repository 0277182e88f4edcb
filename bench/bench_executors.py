"""parallel_map's executors on a CPU-bound map: items/s of each, in one run.

    python bench/bench_executors.py [--items 2000] [--rounds 20000] [--workers 2]

Each item hashes its number `rounds` times with sha256 (pure CPU, holding the GIL). The same
map runs on:

- "async": an `async def` process_item on the event loop (one core, the baseline);
- "process": a pool of `--workers` forked processes;
- "dask": a `distributed.LocalCluster` of `--workers` worker processes with one thread each,
  started by this script (its start-up is reported, not counted). Dask's `max_workers` is per
  worker: 1 (one item per worker process, the right setting for CPU-bound items) and
  `--workers` (items share a worker's GIL).

Every map's time includes opening its session (forking the pool, connecting the Dask client)
and is measured after one small untimed map on the same executor. The results of all maps
are checked to be identical.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kflow_runtime.patterns import parallel_map  # noqa: E402

ROUNDS = 20_000  # set from --rounds before any map; workers get it with the function


def digest(n: int) -> str:
    data = n.to_bytes(8, "little")
    for _ in range(ROUNDS):
        data = hashlib.sha256(data).digest()
    return data.hex()


async def digest_async(n: int) -> str:
    return digest(n)


async def timed(fn: Any, items: list[int], **options: Any) -> tuple[float, list[str]]:
    await parallel_map(fn, items[:20], **options)  # warm-up, untimed
    started = time.perf_counter()
    out = await parallel_map(fn, items, timeout_per_item=None, **options)
    return time.perf_counter() - started, out["results"]


async def bench(items: int, workers: int) -> list[tuple[str, int, str, float, int]]:
    from distributed import LocalCluster

    from kflow_runtime.patterns.dask_executor import DaskExecutor

    data = list(range(items))
    rows: list[tuple[str, int, str, float, int]] = []
    reference: list[str] | None = None

    def add(name: str, max_workers: int, in_flight: str, seconds: float, out: list[str]):
        nonlocal reference
        reference = reference or out
        assert out == reference, f"{name}: results differ"
        rows.append((name, max_workers, in_flight, seconds, len(out)))

    seconds, out = await timed(digest_async, data, max_workers=workers)
    add("async", workers, "1 (one loop)", seconds, out)
    seconds, out = await timed(digest, data, max_workers=workers, executor="process")
    add("process", workers, f"{workers} (processes)", seconds, out)

    started = time.perf_counter()
    cluster = await asyncio.to_thread(
        LocalCluster,
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
    )
    print(f"LocalCluster({workers} workers) started in {time.perf_counter() - started:.1f} s")
    try:
        dask = DaskExecutor(cluster.scheduler_address)
        for per_worker in sorted({1, workers}):
            seconds, out = await timed(digest, data, max_workers=per_worker, executor=dask)
            in_flight = f"{per_worker * workers} ({per_worker} per worker)"
            add("dask", per_worker, in_flight, seconds, out)
    finally:
        await asyncio.to_thread(cluster.close)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    global ROUNDS
    ROUNDS = args.rounds

    import distributed

    print(
        f"python {platform.python_version()}, distributed {distributed.__version__}, "
        f"{os.cpu_count()} CPUs; {args.items:,} items of {args.rounds:,} sha256 rounds each"
    )
    rows = asyncio.run(bench(args.items, args.workers))
    base = rows[0][4] / rows[0][3]
    print()
    print(
        f"{'executor':<9} {'max_workers':>11}  {'items in flight':<20} {'seconds':>8} "
        f"{'items/s':>9} {'vs async':>9}"
    )
    for name, max_workers, in_flight, seconds, count in rows:
        rate = count / seconds
        print(
            f"{name:<9} {max_workers:>11}  {in_flight:<20} {seconds:>8.2f} {rate:>9,.1f} "
            f"{rate / base:>8.2f}x"
        )


if __name__ == "__main__":
    main()
