"""RetryPolicy and retry_call: run a zero-argument async callable again, with exponential
backoff, on chosen errors.

`RetryPolicy` is the one retry type of kflow: a workflow builds it (`AsyncRetryPolicy` and
`RetryPolicy` in `kflow` are this class), the compiler's IR holds it (exception classes as
dotted names, so the IR stays data), and a generated module builds it for `Run.call`. It
accepts the guide's spelling and Kailash's (`max_retries`, `base_delay`, `retry_on`).

Hand-written rather than on tenacity: tenacity's AsyncRetrying costs 35-100 microseconds per
call that succeeds at once, against under 1 for this loop, and a generated module wraps every
retried node in it (measurement in docs/patterns-runtime.md).
"""

from __future__ import annotations

import asyncio
import builtins
import difflib
import importlib
import math
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

T = TypeVar("T")

# Never retried, whatever retry_exceptions says: they end the task or the process.
_NEVER_RETRY = (asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit)

_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", re.ASCII)


class RetryPolicyError(ValueError, TypeError):
    """A RetryPolicy argument is wrong; `hint` says how to write it instead.

    Both a ValueError (a bad value) and a TypeError (a bad keyword), as Python's own
    constructors raise one or the other.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message if hint is None else f"{message} ({hint})")
        self.message = message
        self.hint = hint


def exception_name(exc: str | type[BaseException]) -> str:
    """`ValueError` -> "ValueError"; `aiohttp.ClientError` -> "aiohttp.ClientError"."""
    if isinstance(exc, str):
        return exc
    if exc.__module__ == "builtins" and getattr(builtins, exc.__name__, None) is exc:
        return exc.__name__
    return f"{exc.__module__}.{exc.__qualname__}"


@lru_cache(maxsize=256)
def resolve_exception(name: str) -> type[BaseException]:
    """The exception class a dotted name (or a builtin's name) stands for."""
    if "." in name:
        module, _, attr = name.rpartition(".")
        try:
            found = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise RetryPolicyError(f"retry exception {name!r} cannot be resolved ({exc})") from None
    else:
        found = getattr(builtins, name, None)
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        raise RetryPolicyError(f"retry exception {name!r} is not an exception class")
    return found


# Kailash's spellings of the same settings.
_ALIASES = {"retry_on": "retry_exceptions", "base_delay": "initial_delay"}
_STRATEGIES = ("exponential", "immediate")


@dataclass(frozen=True, init=False)
class RetryPolicy:
    """How often and how patiently to retry; validated when built.

    After attempt n (1-based) fails, the next one waits
    `min(max_delay, initial_delay * backoff_factor ** (n - 1))` seconds: `initial_delay=1`,
    `backoff_factor=2` waits 1 s, then 2 s, then 4 s. `jitter=True` spreads retries from
    many callers out ("equal jitter": half that wait plus a random part of the other half).

    Also accepts Kailash's spelling: `max_retries=n` (retries after the first attempt, so
    `max_attempts=n + 1`), `base_delay` (`initial_delay`), `retry_on` (`retry_exceptions`)
    and `strategy` ("exponential", or "immediate" for no wait).
    """

    max_attempts: int
    initial_delay: float
    backoff_factor: float
    max_delay: float
    # Exception classes, or dotted names ("aiohttp.ClientError") resolved on first use.
    retry_exceptions: tuple[type[BaseException] | str, ...]
    jitter: bool

    def __init__(
        self,
        max_attempts: int | None = None,
        initial_delay: float = 1.0,
        backoff_factor: float = 2.0,
        max_delay: float = 60.0,
        retry_exceptions: Any = (Exception,),
        jitter: bool = False,
        **other: Any,
    ) -> None:
        given = {"initial_delay": initial_delay, "retry_exceptions": retry_exceptions}
        for key, value in other.items():
            if key in _ALIASES:
                given[_ALIASES[key]] = value
            elif key == "max_retries":
                if max_attempts is not None:
                    raise RetryPolicyError("give max_attempts or max_retries, not both")
                max_attempts = _count(value, "max_retries", minimum=0) + 1
            elif key == "strategy":
                if _strategy(value) == "immediate":
                    given["initial_delay"] = 0.0
            else:
                raise RetryPolicyError(f"RetryPolicy got an unexpected keyword {key!r}",
                                       _suggest(key))
        values = {
            "max_attempts": _count(3 if max_attempts is None else max_attempts, "max_attempts",
                                   minimum=1),
            "initial_delay": _seconds(given["initial_delay"], "initial_delay"),
            "backoff_factor": _number(backoff_factor, "backoff_factor", minimum=1.0),
            "max_delay": _seconds(max_delay, "max_delay"),
            "retry_exceptions": _exceptions(given["retry_exceptions"]),
            "jitter": _flag(jitter, "jitter"),
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def delay(self, attempt: int, *, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after attempt `attempt` (1-based) failed, before the next one."""
        try:
            backoff = min(self.max_delay, self.initial_delay * self.backoff_factor ** (attempt - 1))
        except OverflowError:
            backoff = self.max_delay
        if not self.jitter:
            return backoff
        return backoff / 2 + rand() * backoff / 2

    def exception_types(self) -> tuple[type[BaseException], ...]:
        """The classes to retry on, dotted names resolved."""
        return tuple(resolve_exception(e) if isinstance(e, str) else e
                     for e in self.retry_exceptions)

    @property
    def retry_on(self) -> tuple[type[BaseException], ...]:
        """What `retry_call` catches: `exception_types()` (a view of a policy may add to
        it, as `Run` does for a failed resource open)."""
        return self.exception_types()

    def named(self) -> RetryPolicy:
        """This policy with every exception class given by its dotted name (plain data)."""
        names = tuple(exception_name(e) for e in self.retry_exceptions)
        if names == self.retry_exceptions:
            return self
        return RetryPolicy(self.max_attempts, self.initial_delay, self.backoff_factor,
                           self.max_delay, names, self.jitter)


_KEYWORDS = ("max_attempts", "initial_delay", "backoff_factor", "max_delay", "retry_exceptions",
             "jitter", *_ALIASES, "max_retries", "strategy")


def _suggest(key: str) -> str:
    close = difflib.get_close_matches(key, _KEYWORDS, n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    return "RetryPolicy takes " + ", ".join(_KEYWORDS)


def _count(value: Any, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise RetryPolicyError(f"{name} must be a whole number >= {minimum}, not {value!r}",
                               f"e.g. {name}=3")
    return value


def _number(value: Any, name: str, *, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RetryPolicyError(f"{name} must be a number, not {value!r}")
    if not math.isfinite(value) or value < minimum:
        raise RetryPolicyError(f"{name} must be a finite number >= {minimum:g}, not {value!r}")
    return float(value)


def _seconds(value: Any, name: str) -> float:
    return _number(value, name, minimum=0.0)


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise RetryPolicyError(f"{name} must be True or False, not {value!r}")
    return value


def _strategy(value: Any) -> str:
    text = str(getattr(value, "value", value)).lower()
    if text not in _STRATEGIES:
        raise RetryPolicyError(
            f"retry strategy {text!r} is not supported",
            "kflow retries with exponential backoff ('exponential') or without waiting "
            "('immediate'); set backoff_factor for the growth",
        )
    return text


def _exceptions(value: Any) -> tuple[type[BaseException] | str, ...]:
    items = (value,) if isinstance(value, str | type) else value
    try:
        items = tuple(items)
    except TypeError:
        raise RetryPolicyError(
            f"retry_exceptions must be exception classes or dotted names, not {value!r}"
        ) from None
    for item in items:
        if isinstance(item, type) and issubclass(item, BaseException):
            continue
        if isinstance(item, str) and _DOTTED.fullmatch(item):
            continue
        raise RetryPolicyError(
            f"retry_exceptions must hold exception classes or dotted names, not {item!r}",
            "e.g. retry_exceptions=[ConnectionError, 'aiohttp.ClientError']",
        )
    if not items:
        raise RetryPolicyError("retry_exceptions is empty: nothing would be retried",
                               "leave it out to retry on any Exception")
    return items


async def retry_call(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    on_attempt: Callable[[int], Any] | None = None,
    sleep: Callable[[float], Awaitable[Any]] | None = None,
) -> T:
    """Await `fn()` up to `policy.max_attempts` times; return its first success.

    Only instances of `policy.retry_exceptions` are retried; anything else, and the last
    attempt's error, propagates unchanged. `on_attempt(n)` runs as attempt n (1-based) starts.
    """
    pause = sleep or asyncio.sleep
    retry_on = policy.retry_on
    for attempt in range(1, policy.max_attempts + 1):
        if on_attempt is not None:
            on_attempt(attempt)
        try:
            return await fn()
        except _NEVER_RETRY:
            raise
        except retry_on:
            if attempt == policy.max_attempts:
                raise
        await pause(policy.delay(attempt))
    raise AssertionError("unreachable: the last attempt returns or raises")
