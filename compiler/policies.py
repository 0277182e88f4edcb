"""The guide's per-node policies: `AsyncRetryPolicy` and `ErrorHandler`.

`AsyncRetryPolicy` (and Kailash's `RetryPolicy`) *is* `kflow_runtime`'s RetryPolicy:
one retry type for the workflow file, the IR and the generated module. `ErrorHandler`
is a user-facing value the builder turns into the IR's `ErrorHandlerSpec`.
"""

from __future__ import annotations

from typing import Any

from kflow.ir import HANDLER_KINDS, CodeBlock, ErrorHandlerSpec
from kflow.values import BadValue, did_you_mean
from kflow_runtime.patterns.retry import RetryPolicy, exception_name

AsyncRetryPolicy = RetryPolicy

__all__ = ["HANDLER_KINDS", "AsyncRetryPolicy", "ErrorHandler", "RetryPolicy", "exception_name"]

_HANDLER_OPTIONS = ("handler_type", "fallback_value", "code")


class ErrorHandler:
    """What a node's failure turns into.

    `fallback`: the output becomes `fallback_value`; `ignore`: the output is None;
    `log`: the error is logged and the node still fails; `custom`: `code` runs
    with `error` (the exception) in scope and its `result` is the output. Kailash's
    `custom_handler=` is accepted for `code`.
    """

    __slots__ = ("handler_type", "fallback_value", "code")

    def __init__(self, handler_type: str = "fallback", fallback_value: Any = None,
                 code: str | None = None, **other: Any) -> None:
        for key, value in other.items():
            if key == "custom_handler" and code is None:
                code = value
            else:
                raise BadValue(f"ErrorHandler got an unexpected keyword {key!r}",
                               did_you_mean(key, _HANDLER_OPTIONS)
                               or f"ErrorHandler takes {', '.join(_HANDLER_OPTIONS)}")
        if handler_type not in HANDLER_KINDS:
            raise BadValue(
                f"ErrorHandler.handler_type must be one of {', '.join(HANDLER_KINDS)}, "
                f"not {handler_type!r}", did_you_mean(str(handler_type), HANDLER_KINDS))
        if handler_type == "custom" and not code:
            raise BadValue("ErrorHandler(handler_type='custom') needs code=...",
                           "code='result = {\"recovered\": True, \"error\": str(error)}'")
        self.handler_type = handler_type
        self.fallback_value = fallback_value
        self.code = code

    def __repr__(self) -> str:
        return (f"ErrorHandler(handler_type={self.handler_type!r}, "
                f"fallback_value={self.fallback_value!r}, code={self.code!r})")

    def to_spec(self, code: CodeBlock | None = None) -> ErrorHandlerSpec:
        return ErrorHandlerSpec(
            kind=self.handler_type,
            fallback_value=self.fallback_value,
            code=code if self.handler_type == "custom" else None,
        )
