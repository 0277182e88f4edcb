"""Helpers for the authoring functions of the kinds (the builder's `add_*`, `AsyncPatterns`).

Each turns a mistake at the user's call into a located `CompileError`: a bad value
(`located`), a misspelt keyword (`checked_call`: a did-you-mean and the function's own
options, never Python's bare TypeError), a bad per-node option (`node_options`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from kflow.errors import error
from kflow.ir import CodeBlock, ErrorHandlerSpec, NodeOptions, SourceLocation
from kflow.locate import CallSite, caller_site
from kflow.values import BadValue, did_you_mean, limit
from kflow_runtime.patterns.retry import RetryPolicy, RetryPolicyError

F = TypeVar("F", bound=Callable[..., Any])


class located:  # noqa: N801 - used as `with located(...)`, like contextlib's helpers
    """Turn a BadValue (or RetryPolicyError) raised inside into a CompileError `code` at
    `location`. (A class, not @contextmanager: a builder call enters several, and a
    generator-based one costs ten times as much.)"""

    __slots__ = ("location", "code")

    def __init__(self, location: SourceLocation | None, code: str) -> None:
        self.location, self.code = location, code

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> bool:
        if isinstance(exc, BadValue | RetryPolicyError):
            raise error(self.code, exc.message, self.location, exc.hint) from None
        return False


def checked_call(code: str) -> Callable[[F], F]:
    """A builder or pattern function whose bad keywords are a located error `code`."""

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)
        allowed = set(signature.parameters)
        options = [name for name, p in signature.parameters.items()
                   if name not in ("self", "builder")
                   and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        label = fn.__qualname__.replace("AsyncWorkflowBuilder.", "")

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for key in kwargs:
                if key not in allowed:
                    raise error(code, f"{label}() has no option {key!r}",
                                caller_site().location,
                                "; ".join(filter(None, (
                                    did_you_mean(key, options),
                                    f"{label}() takes {', '.join(options)}"))))
            try:
                return fn(*args, **kwargs)
            except TypeError:
                try:
                    signature.bind(*args, **kwargs)
                except TypeError as bad:
                    raise error(code, f"{label}(): {bad}", caller_site().location,
                                f"{label}() takes {', '.join(options)}") from None
                raise

        return wrapper  # type: ignore[return-value]

    return decorate


def code_block(text: Any, site: CallSite, literal: SourceLocation | None) -> CodeBlock:
    if not isinstance(text, str):
        raise error(
            "KF010",
            f"node code must be a string of Python code, not {type(text).__name__}",
            site.location,
            "pass the code as a (triple-quoted) string",
        )
    with located(site.location, "KF010"):
        if literal is not None:
            return CodeBlock(text, literal, exact=True)
        return CodeBlock(text, site.location, exact=False)


def node_options(
    site: CallSite,
    *,
    timeout: Any = 30,
    retry_policy: Any = None,
    error_handler: Any = None,
    required_resources: Sequence[str] | None = None,
    description: str | None = None,
) -> NodeOptions:
    """The options any node takes, checked at the user's call (KF011).

    `timeout` is seconds per attempt; None or `float('inf')` mean no limit.
    """
    from kflow.policies import ErrorHandler

    location = site.location
    with located(location, "KF011"):
        timeout = limit(timeout, "timeout")
    if retry_policy is not None and not isinstance(retry_policy, RetryPolicy):
        raise error("KF011", "retry_policy must be an AsyncRetryPolicy", location,
                    "retry_policy=AsyncRetryPolicy(max_attempts=3, initial_delay=1.0)")
    if error_handler is not None and not isinstance(error_handler, ErrorHandler):
        raise error("KF011", "error_handler must be an ErrorHandler", location,
                    "error_handler=ErrorHandler(handler_type='fallback', fallback_value=...)")
    handler: ErrorHandlerSpec | None = None
    if error_handler is not None:
        code = None
        if error_handler.handler_type == "custom":
            code = code_block(error_handler.code or "", site, None)
        try:
            handler = error_handler.to_spec(code)
        except BadValue as exc:
            raise error("KF015", f"error handler: {exc.message}", location,
                        exc.hint or "use JSON-like values") from None
    if isinstance(required_resources, str):
        required_resources = [required_resources]
    with located(location, "KF011"):
        return NodeOptions(
            timeout=timeout,
            retry=retry_policy.named() if retry_policy is not None else None,
            error_handler=handler,
            required_resources=tuple(required_resources or ()),
            description=description,
        )


def with_retry(options: NodeOptions, retry: RetryPolicy) -> NodeOptions:
    return NodeOptions(options.timeout, retry.named(), options.error_handler,
                       options.required_resources, options.description)


def with_required(options: NodeOptions, *names: str) -> NodeOptions:
    required = (*options.required_resources,
                *(n for n in names if n not in options.required_resources))
    return NodeOptions(options.timeout, options.retry, options.error_handler, required,
                       options.description)


def add_guarded_code(builder: Any, kind: str, node_id: str, code: Any, site: CallSite,
                     params: Any, *, shared: str | None, **options: Any) -> str:
    """Add a node of `kind` that guards the user's `code` (its 3rd argument) with state
    that `shared` may keep in a Redis resource: rate_limited and circuit_breaker."""
    node_opts = node_options(site, **options)
    if shared:
        node_opts = with_required(node_opts, shared)
    block = code_block(code, site, site.string_at(2, "code"))
    return builder.add_node(builder.node(node_id, kind, site, code=block, params=params,
                                         options=node_opts))


__all__ = ["add_guarded_code", "checked_call", "code_block", "located", "node_options",
           "with_required", "with_retry"]
