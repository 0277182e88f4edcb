"""How the pattern primitives name and summarise errors (one place, so every pattern agrees)."""

from __future__ import annotations

from kflow_runtime.redact import mask


class PatternError(Exception):
    """Base of the errors a pattern primitive raises about a whole call.

    PatternError
     ├── ParallelMapError    items of parallel_map failed (continue_on_error=False)
     ├── ParallelFetchError  operations of parallel_fetch failed (continue_on_error=False)
     ├── BatchError          a batch of batch_process failed (what came before is kept)
     └── CacheKeyError       a cache key template names a missing field (also a KeyError)
    """


def error_message(exc: BaseException) -> str:
    """`str(exc)`, or the class name when the exception carries no message; credentials
    in URLs masked (`u:***@`), since these messages land in outputs and envelopes."""
    return mask(str(exc)) or type(exc).__name__


def describe(exc: BaseException) -> tuple[str, str]:
    """`(message, error_type)`: a picklable stand-in for an exception."""
    return error_message(exc), type(exc).__name__


def format_error(message: str, error_type: str) -> str:
    """`"ValueError: boom"`; just the type when the message is the type's name."""
    return error_type if message == error_type else f"{error_type}: {message}"


def item_timed_out(timeout: float | None) -> TimeoutError:
    """The error recorded for an item that ran past parallel_map's `timeout_per_item`."""
    return TimeoutError(f"item timed out after {timeout}s")
