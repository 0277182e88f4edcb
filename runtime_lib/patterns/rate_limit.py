"""RateLimiter: a token bucket shared by every run in the process.

Hand-written rather than aiolimiter (see docs/patterns-runtime.md): the limiter lives at module
level in a generated module and outlives event loops, and tests drive it with a fake clock.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable

from ..observe import emit


class RateLimiter:
    """At most `burst_size + requests_per_second * T` acquisitions complete in any T seconds.

    Each caller first reserves the next free start time (GCRA, the scheduling form of a token
    bucket), so waiters are served in arrival order without waking each other. Before it
    returns, it checks the bucket again at the moment it actually goes: a waiter that wakes
    late (a busy loop) must not let several late waiters through at once. No state is tied to
    an event loop, so several `asyncio.run()` calls in turn, or loops in several threads, can
    share one limiter; a lock guards the few lines that read and update it.
    """

    def __init__(
        self,
        requests_per_second: float,
        burst_size: int | None = None,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[object]] | None = None,
    ) -> None:
        if not requests_per_second > 0:
            raise ValueError(f"requests_per_second must be > 0, got {requests_per_second!r}")
        if burst_size is None:
            burst_size = max(1, int(requests_per_second))
        if not isinstance(burst_size, int) or burst_size < 1:
            raise ValueError(f"burst_size must be a positive int, got {burst_size!r}")
        self.requests_per_second = requests_per_second
        self.burst_size = burst_size
        self._clock = clock or time.monotonic
        self._sleep = sleep or asyncio.sleep
        self._interval = 1.0 / requests_per_second
        # A start is allowed at t if t >= tat - tolerance ("theoretical arrival time").
        self._tolerance = (burst_size - 1) * self._interval
        self._reserved_tat = float("-inf")  # for handing out start times in arrival order
        self._granted_tat = float("-inf")  # for the check when a caller actually starts
        self._lock = threading.Lock()

    async def acquire(self) -> None:
        """Wait until a request may start; return as it starts."""
        with self._lock:
            now = self._clock()
            tat = max(self._reserved_tat, now)
            self._reserved_tat = tat + self._interval
            start = tat - self._tolerance
        if start > now:
            emit("kflow.rate_limit.wait", {"kflow.rate_limit.wait_s": start - now,
                                           "kflow.rate_limit.rps": self.requests_per_second})
            try:
                await self._sleep(start - now)
            except BaseException:
                self._release(tat + self._interval)
                raise
        while True:
            with self._lock:
                now = self._clock()
                tat = max(self._granted_tat, now)
                wait = tat - self._tolerance - now
                if wait <= 0:
                    self._granted_tat = tat + self._interval
                    return
            await self._sleep(wait)

    def _release(self, reserved: float) -> None:
        """A cancelled waiter gives its slot back if no later caller has reserved after it."""
        with self._lock:
            if self._reserved_tat == reserved:
                self._reserved_tat -= self._interval

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def __repr__(self) -> str:
        return (
            f"RateLimiter(requests_per_second={self.requests_per_second!r}, "
            f"burst_size={self.burst_size!r})"
        )
