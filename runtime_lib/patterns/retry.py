"""retry_call: run a zero-argument async callable again, with exponential backoff, on chosen errors.

Hand-written rather than on tenacity: tenacity's AsyncRetrying costs 35-100 microseconds per
call that succeeds at once, against under 1 for this loop, and a generated module wraps every
retried node in it (measurement in docs/patterns-runtime.md).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

# Never retried, whatever retry_on says: they end the task or the process.
_NEVER_RETRY = (asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry; validated when built."""

    max_attempts: int = 3
    initial_delay: float = 1.0
    backoff_factor: float = 2.0
    max_delay: float = 60.0
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    jitter: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"max_attempts must be a positive int, got {self.max_attempts!r}")
        for name in ("initial_delay", "max_delay"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0 seconds, got {getattr(self, name)!r}")
        if not self.backoff_factor >= 1:
            raise ValueError(f"backoff_factor must be >= 1, got {self.backoff_factor!r}")
        retry_on = self.retry_on
        if isinstance(retry_on, type):
            retry_on = (retry_on,)
        retry_on = tuple(retry_on)
        for cls in retry_on:
            if not (isinstance(cls, type) and issubclass(cls, BaseException)):
                raise TypeError(f"retry_on must hold exception classes, got {cls!r}")
        object.__setattr__(self, "retry_on", retry_on)

    def delay(self, attempt: int, *, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after attempt `attempt` (1-based) failed, before the next one.

        `min(max_delay, initial_delay * backoff_factor ** (attempt - 1))`; with jitter, "equal
        jitter": half of that plus a random part of the other half, so retries from many
        callers spread out yet never come sooner than half the configured backoff.
        """
        try:
            backoff = min(self.max_delay, self.initial_delay * self.backoff_factor ** (attempt - 1))
        except OverflowError:
            backoff = self.max_delay
        if not self.jitter:
            return backoff
        return backoff / 2 + rand() * backoff / 2


async def retry_call(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    on_attempt: Callable[[int], Any] | None = None,
    sleep: Callable[[float], Awaitable[Any]] | None = None,
) -> T:
    """Await `fn()` up to `policy.max_attempts` times; return its first success.

    Only instances of `policy.retry_on` are retried; anything else, and the last attempt's
    error, propagates unchanged. `on_attempt(n)` runs as attempt n (1-based) starts.
    """
    pause = sleep or asyncio.sleep
    for attempt in range(1, policy.max_attempts + 1):
        if on_attempt is not None:
            on_attempt(attempt)
        try:
            return await fn()
        except _NEVER_RETRY:
            raise
        except policy.retry_on:
            if attempt == policy.max_attempts:
                raise
        await pause(policy.delay(attempt))
    raise AssertionError("unreachable: the last attempt returns or raises")
