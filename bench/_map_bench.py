"""Interleaved rounds for the map benchmarks (bench_parallel_map.py, bench_map_http.py).

Every contender runs once per round, in alternating order (ABAB, then BABA), so drift in the
machine's speed (this 2-vCPU VM is shared) hits each alike. Each run records wall time and the
process's CPU time. Ratios are taken per round against the baseline of the same round, then
summarised as median and min-max. On this VM the same code runs at one speed while the other
vCPU is idle and about 1.7x slower while it is busy, so a round can pair a fast run with a slow
one: `best_ratio` (fastest run against fastest run) is printed beside the median.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float


def timed(run: Callable[[], object]) -> Timing:
    gc.collect()
    cpu = time.process_time()
    wall = time.perf_counter()
    run()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu)


def interleaved(contenders: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[Timing]]:
    """Timings of each contender, one per round."""
    names = list(contenders)
    timings: dict[str, list[Timing]] = {name: [] for name in names}
    for number in range(rounds):
        for name in names if number % 2 == 0 else reversed(names):
            timings[name].append(timed(contenders[name]))
    return timings


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values))

    def __str__(self) -> str:
        return f"{self.median:.2f}x ({self.low:.2f}-{self.high:.2f})"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)  # the spec pads the whole figure


def speedups(base: list[Timing], other: list[Timing]) -> tuple[Spread, Spread]:
    """Per-round speed of `other` relative to `base` (>1: faster), by wall and by CPU time."""
    wall = [b.wall / o.wall for b, o in zip(base, other, strict=True)]
    cpu = [b.cpu / o.cpu for b, o in zip(base, other, strict=True)]
    return Spread.of(wall), Spread.of(cpu)


def best_ratio(base: list[Timing], other: list[Timing]) -> float:
    """The fastest CPU time of `base` over the fastest of `other` (>1: `other` faster)."""
    return min(t.cpu for t in base) / min(t.cpu for t in other)
