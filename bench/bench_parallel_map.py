"""parallel_map against a hand-written asyncio worker pool: speed and memory.

    python bench/bench_parallel_map.py [--rounds 5] [--workers 50] [--instant-items 1000000]
                                       [--suspending-items 100000] [--no-memory] [--check]

Speed, two kinds of items, each with and without a per-item timeout (the hand-written pool
then wraps each item in `asyncio.timeout`, as one would by hand):

- items that never suspend (`return x + 1`): budget parallel_map >= 0.9x the pool's items/s
  (DESIGN.md section 9);
- items that suspend once (`await asyncio.sleep(0)`, as any I/O does): budget >= 1.0x
  (issue 15 part 3).

Both contenders run once per round in alternating order (bench/_map_bench.py); each figure is
the median over rounds with min-max, for wall time and for CPU time of the process, and
"best CPU" compares the fastest run of each. The verdict is on the median wall ratio.

Instructions: `--one CONTENDER --kind suspending --items N` runs one map and nothing else, for
counting under valgrind (steadier than time on a shared VM); the difference between two sizes
cancels start-up costs:

    valgrind --tool=cachegrind --cache-sim=yes python bench/bench_parallel_map.py \
        --one parallel_map --kind suspending --items 30000   # and --items 10000

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
import tracemalloc
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _map_bench import best_ratio, interleaved, speedups  # noqa: E402

from kflow_runtime.patterns import parallel_map  # noqa: E402


async def instant_item(x: int) -> int:
    return x + 1


async def suspending_item(x: int) -> int:
    await asyncio.sleep(0)
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


POOL, MAP, AGAIN = "hand-written pool", "parallel_map", "the pool again"
# The pool twice: how far apart two runs of the same code come out is the noise floor.
CONTENDERS = {POOL: hand_written_pool, MAP: with_parallel_map, AGAIN: hand_written_pool}


def runner(contender: Callable[..., Any], fn: Callable[[Any], Any], items: list[int],
           workers: int, timeout: float | None) -> Callable[[], None]:
    def run() -> None:
        results = asyncio.run(contender(fn, items, workers, timeout))
        assert len(results) == len(items)

    return run


def speed(kind: str, fn: Callable[[Any], Any], n: int, budget: float, args: argparse.Namespace
          ) -> bool:
    items = list(range(n))
    print(f"{kind}: {n:,} items, {args.workers} workers, {args.rounds} rounds; "
          f"median (min-max); budget: parallel_map >= {budget}x the pool")
    print(f"  {'timeout':>7}  {'pool items/s':>12}  {'map items/s':>12}  {'wall ratio':>18}  "
          f"{'CPU ratio':>18}  {'best CPU':>8}  {'CPU us/item pool, map':>21}  "
          f"{'pool vs itself':>18}")
    ok = True
    for timeout in (None, 5.0):
        contenders = {name: runner(c, fn, items, args.workers, timeout)
                      for name, c in CONTENDERS.items()}
        for run in contenders.values():  # warm-up, untimed: allocator pools, caches
            run()
        timings = interleaved(contenders, args.rounds)
        wall, cpu = speedups(timings[POOL], timings[MAP])
        rate = {name: statistics.median(n / t.wall for t in ts) for name, ts in timings.items()}
        per_item = {name: statistics.median(t.cpu for t in ts) / n * 1e6
                    for name, ts in timings.items()}
        met = wall.median >= budget
        ok &= met
        best = best_ratio(timings[POOL], timings[MAP])
        itself, _ = speedups(timings[POOL], timings[AGAIN])
        print(f"  {timeout!s:>7}  {rate[POOL]:>12,.0f}  {rate[MAP]:>12,.0f}  {wall:>18}  "
              f"{cpu:>18}  {best:>7.2f}x  {per_item[POOL]:>10.2f}, {per_item[MAP]:<9.2f}  "
              f"{itself:>18}  {'ok' if met else 'MISSED'}")
    print("  (pool vs itself: the same pool run twice per round, the noise floor of the ratios)")
    print()
    return ok


def memory_beyond_output(
    contender: Callable[..., Any], n: int, workers: int, timeout: float | None
) -> int:
    items = list(range(n))
    gc.collect()
    tracemalloc.start()
    try:
        results = asyncio.run(contender(instant_item, items, workers, timeout))
        retained, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(results) == n
    return peak - retained


def memory(n_items: int, workers: int) -> bool:
    print("memory beyond input and output (tracemalloc peak - retained output), bytes, "
          "items that never suspend")
    print(f"  {'items':>10}  {'timeout':>7}  {POOL:>18}  {MAP:>14}")
    ok = True
    sizes = sorted({100_000, n_items})
    for timeout in (None, 5.0):
        overhead = []
        for n in sizes:
            beyond = {name: memory_beyond_output(CONTENDERS[name], n, workers, timeout)
                      for name in (POOL, MAP)}
            overhead.append(beyond[MAP])
            print(f"  {n:>10,}  {timeout!s:>7}  {beyond[POOL]:>18,}  {beyond[MAP]:>14,}")
        # O(workers): allocator noise may move the figure a little, the item count must not.
        flat = max(overhead) <= 2 * min(overhead) + 64 * 1024
        ok &= flat
        print(f"  {'':>10}  parallel_map independent of item count: {'ok' if flat else 'MISSED'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--instant-items", type=int, default=1_000_000)
    parser.add_argument("--suspending-items", type=int, default=100_000)
    parser.add_argument("--no-memory", action="store_true", help="skip the memory part")
    parser.add_argument("--check", action="store_true", help="exit 1 if a budget is missed")
    parser.add_argument("--one", choices=["pool", "parallel_map"],
                        help="run one map of --items items and exit (for valgrind)")
    parser.add_argument("--kind", choices=["instant", "suspending"], default="suspending")
    parser.add_argument("--items", type=int, default=30_000)
    parser.add_argument("--timeout", type=float, default=None)
    args = parser.parse_args(argv)
    if args.one:
        contender = hand_written_pool if args.one == "pool" else with_parallel_map
        fn = instant_item if args.kind == "instant" else suspending_item
        runner(contender, fn, list(range(args.items)), args.workers, args.timeout)()
        return 0

    print(f"python {sys.version.split()[0]}")
    print()
    ok = speed("items that never suspend", instant_item, args.instant_items, 0.9, args)
    ok &= speed("items that await asyncio.sleep(0)", suspending_item, args.suspending_items,
                1.0, args)
    if not args.no_memory:
        ok &= memory(args.instant_items, args.workers)
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
