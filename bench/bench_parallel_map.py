"""parallel_map against a hand-written asyncio worker pool: speed and memory.

    python bench/bench_parallel_map.py [--items N] [--workers W] [--repeat R] [--check]

Speed: items/s on trivial async items, best of R runs each, interleaved, with and without a
per-item timeout (the baseline applies the same timeout). Budget (DESIGN.md section 9):
parallel_map >= 0.9x the baseline.

Memory: tracemalloc peak during one map minus what the map leaves behind (its output), for
100k and N items, with and without the timeout. The input list is built before tracing starts,
so it is not counted. parallel_map's figure must not grow with the item count: O(workers).
(The hand-written pool's does grow with a timeout: asyncio.timeout() leaves a cancelled timer
per item in the loop's heap while items finish without suspending.)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kflow_runtime.patterns import parallel_map  # noqa: E402

BUDGET = 0.9


async def process_item(x: int) -> int:
    return x + 1


async def hand_written_pool(
    fn: Callable[[Any], Any], items: Iterable[Any], workers: int, timeout: float | None
) -> list[Any]:
    """What one would write by hand: N workers pull from a shared iterator and append."""
    shared = iter(items)
    results: list[Any] = []

    async def worker() -> None:
        for item in shared:
            if timeout is None:
                results.append(await fn(item))
            else:
                async with asyncio.timeout(timeout):
                    results.append(await fn(item))

    await asyncio.gather(*(worker() for _ in range(workers)))
    return results


async def with_parallel_map(
    fn: Callable[[Any], Any], items: Iterable[Any], workers: int, timeout: float | None
) -> list[Any]:
    out = await parallel_map(fn, items, max_workers=workers, timeout_per_item=timeout)
    return out["results"]


CONTENDERS = {"hand-written pool": hand_written_pool, "parallel_map": with_parallel_map}


def items_per_second(
    runner: Callable[..., Any], items: list[int], workers: int, timeout: float | None
) -> float:
    gc.collect()
    started = time.perf_counter()
    results = asyncio.run(runner(process_item, items, workers, timeout))
    elapsed = time.perf_counter() - started
    assert len(results) == len(items)
    return len(items) / elapsed


def speed(
    items: list[int], workers: int, repeat: int, timeout: float | None
) -> tuple[dict[str, float], float]:
    """Best items/s of each contender, and the median of the per-round ratios."""
    for runner in CONTENDERS.values():  # warm-up, untimed: allocator pools, caches
        items_per_second(runner, items[: len(items) // 10], workers, timeout)
    best = dict.fromkeys(CONTENDERS, 0.0)
    ratios = []
    for _ in range(repeat):  # interleaved, so drift in machine speed hits both alike
        rate = {
            name: items_per_second(r, items, workers, timeout) for name, r in CONTENDERS.items()
        }
        ratios.append(rate["parallel_map"] / rate["hand-written pool"])
        best = {name: max(best[name], rate[name]) for name in best}
    return best, statistics.median(ratios)


def memory_beyond_output(
    runner: Callable[..., Any], n: int, workers: int, timeout: float | None
) -> int:
    items = list(range(n))
    gc.collect()
    tracemalloc.start()
    try:
        results = asyncio.run(runner(process_item, items, workers, timeout))
        retained, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(results) == n
    return peak - retained


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--check", action="store_true", help="exit 1 if a budget is missed")
    args = parser.parse_args(argv)

    items = list(range(args.items))
    print(
        f"python {sys.version.split()[0]}; {args.items:,} trivial async items, "
        f"{args.workers} workers, best of {args.repeat}"
    )
    print()
    print(
        f"{'timeout_per_item':>16}  {'hand-written items/s':>20}  {'parallel_map items/s':>20}"
        f"  {'best/best':>9}  {'median of rounds':>16}  budget >= {BUDGET}"
    )
    ok = True
    for timeout in (None, 5.0):
        best, median_ratio = speed(items, args.workers, args.repeat, timeout)
        ratio = best["parallel_map"] / best["hand-written pool"]
        ok &= ratio >= BUDGET
        print(
            f"{timeout!s:>16}  {best['hand-written pool']:>20,.0f}  "
            f"{best['parallel_map']:>20,.0f}  {ratio:>9.2f}  {median_ratio:>16.2f}  "
            f"{'ok' if ratio >= BUDGET else 'MISSED'}"
        )

    print()
    print("memory beyond input and output (tracemalloc peak - retained output), bytes")
    print(
        f"{'items':>10}  {'timeout_per_item':>16}  {'hand-written pool':>18}  {'parallel_map':>14}"
    )
    sizes = sorted({100_000, args.items})
    for timeout in (None, 5.0):
        overhead = []
        for n in sizes:
            beyond = {
                name: memory_beyond_output(runner, n, args.workers, timeout)
                for name, runner in CONTENDERS.items()
            }
            overhead.append(beyond["parallel_map"])
            print(
                f"{n:>10,}  {timeout!s:>16}  {beyond['hand-written pool']:>18,}  "
                f"{beyond['parallel_map']:>14,}"
            )
        # O(workers): allocator noise may move the figure a little, the item count must not.
        flat = max(overhead) <= 2 * min(overhead) + 64 * 1024
        ok &= flat
        print(f"{'':>10}  parallel_map independent of item count: {'ok' if flat else 'MISSED'}")
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
