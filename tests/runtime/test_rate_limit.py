"""RateLimiter: the token-bucket bound, across separate event loops, on virtual time.

The limiter gets a virtual clock and sleep, so the test decides when time passes: every
acquisition time is exact and no test waits for real.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Coroutine
from typing import Any

import pytest

from kflow_runtime.patterns import RateLimiter


class VirtualTime:
    """A clock that only moves when every task in play is asleep on it.

    `stalled_until`: no sleeper wakes before that time, as when a loop is blocked; every
    sleeper due earlier wakes then, all at once.
    """

    def __init__(self, stalled_until: float = 0.0) -> None:
        self.now = 0.0
        self.stalled_until = stalled_until
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        future = asyncio.get_running_loop().create_future()
        wake = max(self.now + max(0.0, delay), self.stalled_until)
        heapq.heappush(self._sleepers, (wake, next(self._order), future))
        await future

    async def run(self, *coros: Coroutine[Any, Any, Any]) -> list[Any]:
        tasks = [asyncio.create_task(c) for c in coros]
        while not all(t.done() for t in tasks):
            await asyncio.sleep(0)
            self._sleepers = [s for s in self._sleepers if not s[2].done()]
            heapq.heapify(self._sleepers)
            live = sum(not t.done() for t in tasks)
            if live and len(self._sleepers) == live:  # everyone waits on us: advance
                wake, _, future = heapq.heappop(self._sleepers)
                self.now = max(self.now, wake)
                future.set_result(None)
        return [t.result() for t in tasks]


def acquirer(limiter: RateLimiter, vt: VirtualTime, times: list[float]):
    async def acquire() -> None:
        await limiter.acquire()
        times.append(vt.now)

    return acquire


def assert_token_bucket_bound(times: list[float], rps: float, burst: int) -> None:
    """No window [t_i, t_j] holds more than burst + rps * (t_j - t_i) acquisitions."""
    times = sorted(times)
    for i, j in itertools.combinations(range(len(times)), 2):
        allowed = burst + rps * (times[j] - times[i]) + 1e-9
        assert j - i + 1 <= allowed, (
            f"{j - i + 1} acquisitions in [{times[i]}, {times[j]}], allowed {allowed:.3f}"
        )


def test_burst_then_steady_rate():
    vt = VirtualTime()
    limiter = RateLimiter(2, burst_size=3, clock=vt.clock, sleep=vt.sleep)
    times: list[float] = []
    acquire = acquirer(limiter, vt, times)

    asyncio.run(vt.run(*(acquire() for _ in range(7))))

    assert times == [0.0, 0.0, 0.0, 0.5, 1.0, 1.5, 2.0]


def test_bound_holds_across_separate_runs_and_loops():
    vt = VirtualTime()
    rps, burst = 5.0, 4
    limiter = RateLimiter(rps, burst_size=burst, clock=vt.clock, sleep=vt.sleep)
    times: list[float] = []
    acquire = acquirer(limiter, vt, times)

    for run, callers in enumerate((12, 3, 20, 1, 9)):
        asyncio.run(vt.run(*(acquire() for _ in range(callers))))
        vt.now += 0.3 * run  # idle time between runs refills the bucket, up to the burst

    assert len(times) == 45
    assert_token_bucket_bound(times, rps, burst)
    # And it is not merely slow: after an idle spell the last run gets the full burst at
    # once, then one start every 1 / rps seconds.
    last = [t - times[-9] for t in times[-9:]]
    assert last == pytest.approx([0, 0, 0, 0, 0.2, 0.4, 0.6, 0.8, 1.0])


def test_late_wake_ups_do_not_bunch_up():
    # The loop stalls for 2 s: some 20 waiters whose start times passed meanwhile all wake
    # at once, and must still go no faster than the bucket allows.
    vt = VirtualTime(stalled_until=2.0)
    rps, burst = 10.0, 2
    limiter = RateLimiter(rps, burst_size=burst, clock=vt.clock, sleep=vt.sleep)
    times: list[float] = []

    asyncio.run(vt.run(*(acquirer(limiter, vt, times)() for _ in range(30))))

    assert len(times) == 30
    assert times.count(2.0) == burst
    assert_token_bucket_bound(times, rps, burst)


def test_default_burst_is_the_rate_rounded_down_at_least_one():
    assert RateLimiter(5).burst_size == 5
    assert RateLimiter(2.7).burst_size == 2
    assert RateLimiter(0.5).burst_size == 1


def test_cancelled_waiter_gives_its_slot_back():
    vt = VirtualTime()
    limiter = RateLimiter(1, burst_size=1, clock=vt.clock, sleep=vt.sleep)
    times: list[float] = []

    async def scenario() -> None:
        await limiter.acquire()  # t=0, the burst
        waiter = asyncio.create_task(limiter.acquire())  # reserved t=1
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        await limiter.acquire()  # takes the t=1 slot back, not t=2
        times.append(vt.now)

    asyncio.run(vt.run(scenario()))
    assert times == [1.0]


def test_shared_limiter_works_with_the_real_clock_on_several_loops():
    # No virtual time: only checks that a module-level limiter is not tied to the first
    # loop that used it. The rate is high, so this takes milliseconds.
    limiter = RateLimiter(1000, burst_size=5)
    done = []

    async def burst() -> None:
        await asyncio.gather(*(limiter.acquire() for _ in range(10)))
        done.append(True)

    asyncio.run(burst())
    asyncio.run(burst())
    assert done == [True, True]


async def test_usable_as_async_context_manager():
    vt = VirtualTime()
    limiter = RateLimiter(1, clock=vt.clock, sleep=vt.sleep)
    async with limiter:
        pass
    assert "requests_per_second=1" in repr(limiter)


@pytest.mark.parametrize("rps,burst", [(0, None), (-1, None), (1, 0), (1, 1.5)])
def test_invalid_settings_fail_at_construction(rps: float, burst: Any):
    with pytest.raises(ValueError):
        RateLimiter(rps, burst)
