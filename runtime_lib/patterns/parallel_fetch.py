"""parallel_fetch: run named operations concurrently, each under its own timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from kflow_runtime.run import is_cancellation

from ..sourcemap import where_raised
from ._errors import PatternError, error_message, format_error


class ParallelFetchError(PatternError):
    """Operations failed and `continue_on_error` was False; `result` holds the full answer."""

    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.result = result


async def parallel_fetch(
    operations: Mapping[str, Callable[[], Awaitable[Any]]],
    *,
    timeout_per_operation: float | None = 30.0,
    continue_on_error: bool = True,
) -> dict[str, Any]:
    """Start every operation at once; return `{"successful", "failed", "statistics"}`.

    `successful` maps key -> value, `failed` key -> "ErrorType: message", both in the order
    the operations were given. Every operation runs to its end or its timeout, also when
    `continue_on_error` is False: then ParallelFetchError names all the failed keys.
    """
    if timeout_per_operation is not None and not timeout_per_operation > 0:
        raise ValueError(
            f"timeout_per_operation must be None or > 0 seconds, got {timeout_per_operation!r}"
        )
    keys = list(operations)
    started = time.perf_counter()
    outcomes = await asyncio.gather(
        *(_settle(operations[key], timeout_per_operation) for key in keys)
    )
    successful: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for key, (ok, value) in zip(keys, outcomes, strict=True):
        if ok:
            successful[key] = value
        else:
            failed[key] = value
    result = {
        "successful": successful,
        "failed": failed,
        "statistics": {
            "total": len(keys),
            "successful": len(successful),
            "failed": len(failed),
            "duration": time.perf_counter() - started,
        },
    }
    if failed and not continue_on_error:
        details = ", ".join(f"{key} ({message})" for key, message in failed.items())
        raise ParallelFetchError(
            f"{len(failed)} of {len(keys)} operations failed: {details}", result
        )
    return result


async def _settle(
    operation: Callable[[], Awaitable[Any]], timeout: float | None
) -> tuple[bool, Any]:
    """(True, value) or (False, "ErrorType: message"); never raises for the operation."""
    scope = asyncio.timeout(timeout)  # timeout None: no deadline
    try:
        async with scope:
            return True, await operation()
    except BaseException as exc:
        # SystemExit or a CancelledError the operation raised itself fails that operation;
        # only a cancellation of the node (its timeout, the run) ends them all.
        if is_cancellation(exc):
            raise
        if isinstance(exc, TimeoutError) and scope.expired():
            return False, f"TimeoutError: operation timed out after {timeout}s"
        where = where_raised(exc.__traceback__)  # the user's line, as a node's error has it
        text = format_error(error_message(exc), type(exc).__name__)
        return False, f"{where}: {text}" if where else text
