"""The guide's per-node policies: `AsyncRetryPolicy` and `ErrorHandler`.

They are user-facing value objects; the builder turns them into the IR's
`RetrySpec` / `ErrorHandlerSpec`. Exception classes are kept as dotted names so
the IR stays data; the analyser resolves the names at compile time.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kflow.ir import CodeBlock, ErrorHandlerSpec, RetrySpec, freeze

HANDLER_KINDS = ("fallback", "ignore", "log", "custom")


def exception_name(exc: str | type[BaseException]) -> str:
    """`ValueError` -> "ValueError"; `aiohttp.ClientError` -> "aiohttp.ClientError"."""
    if isinstance(exc, str):
        return exc
    if not (isinstance(exc, type) and issubclass(exc, BaseException)):
        raise TypeError(f"retry_exceptions takes exception classes or dotted names, not {exc!r}")
    if exc.__module__ == "builtins" and getattr(builtins, exc.__name__, None) is exc:
        return exc.__name__
    return f"{exc.__module__}.{exc.__qualname__}"


@dataclass(frozen=True)
class AsyncRetryPolicy:
    """Retry a node: `max_attempts` in all, exponential backoff capped at `max_delay`."""

    max_attempts: int = 3
    initial_delay: float = 1.0
    backoff_factor: float = 2.0
    max_delay: float = 60.0
    retry_exceptions: Sequence[str | type[BaseException]] = field(
        default_factory=lambda: ("Exception",)
    )

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("AsyncRetryPolicy.max_attempts must be at least 1")
        if self.initial_delay < 0 or self.max_delay < 0 or self.backoff_factor < 1:
            raise ValueError(
                "AsyncRetryPolicy needs initial_delay >= 0, max_delay >= 0, backoff_factor >= 1"
            )

    def to_spec(self) -> RetrySpec:
        return RetrySpec(
            max_attempts=int(self.max_attempts),
            initial_delay=float(self.initial_delay),
            backoff_factor=float(self.backoff_factor),
            max_delay=float(self.max_delay),
            retry_exceptions=tuple(exception_name(e) for e in self.retry_exceptions),
        )


RetryPolicy = AsyncRetryPolicy


@dataclass(frozen=True)
class ErrorHandler:
    """What a node's failure turns into.

    `fallback`: the output becomes `fallback_value`; `ignore`: the output is None;
    `log`: the error is logged and the node still fails; `custom`: `code` runs
    with `error` (the exception) in scope and its `result` is the output.
    """

    handler_type: str = "fallback"
    fallback_value: Any = None
    code: str | None = None

    def __post_init__(self) -> None:
        if self.handler_type not in HANDLER_KINDS:
            raise ValueError(
                f"ErrorHandler.handler_type must be one of {', '.join(HANDLER_KINDS)}, "
                f"not {self.handler_type!r}"
            )
        if self.handler_type == "custom" and not self.code:
            raise ValueError("ErrorHandler(handler_type='custom') needs code=...")

    def to_spec(self, code: CodeBlock | None = None) -> ErrorHandlerSpec:
        return ErrorHandlerSpec(
            kind=self.handler_type,
            fallback_value=freeze(self.fallback_value),
            code=code if self.handler_type == "custom" else None,
        )
