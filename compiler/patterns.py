"""The guide's resilience patterns, as IR nodes.

Each pattern is a node kind with its parameters frozen into `Node.params`;
`compiler/codegen.py` gives each kind a template in `templates/patterns/`, and
`kflow_runtime.patterns` holds the primitives the generated code calls. Parameters
are checked here, at the user's call, so a bad value fails at their line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kflow.builder import code_block
from kflow.errors import error
from kflow.inline import inline_callable
from kflow.ir import Node, NodeOptions, RetrySpec, SourceLocation, freeze
from kflow.locate import CallSite, caller_site
from kflow.policies import exception_name

if TYPE_CHECKING:
    from kflow.builder import AsyncWorkflowBuilder

EXECUTORS = ("async", "thread", "process", "dask")


def _positive(value: Any, name: str, location: SourceLocation | None, *,
              allow_none: bool = False, integer: bool = False) -> None:
    if value is None and allow_none:
        return
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        what = "a positive whole number" if integer else "a positive number"
        raise error("KF016", f"{name} must be {what}, not {value!r}", location,
                    f"e.g. {name}={'10' if integer else '1.0'}")


def parallel_map_node(
    node_id: str,
    map_function: str | Callable[..., Any],
    *,
    site: CallSite,
    input_field: str,
    output_field: str,
    max_workers: int,
    batch_size: int | None,
    timeout_per_item: float | None,
    continue_on_error: bool,
    executor: str | None,
    description: str | None,
) -> Node:
    location = site.location
    _positive(max_workers, "max_workers", location, integer=True)
    _positive(batch_size, "batch_size", location, allow_none=True, integer=True)
    _positive(timeout_per_item, "timeout_per_item", location, allow_none=True)
    for name, value in (("input_field", input_field), ("output_field", output_field)):
        if not isinstance(value, str) or not value.isidentifier():
            raise error("KF016", f"{name} must be a Python name, not {value!r}", location,
                        f"the default is {name}={'items' if name == 'input_field' else 'results'!r}")
    if executor is not None and executor not in EXECUTORS:
        raise error("KF016", f"executor must be one of {', '.join(EXECUTORS)}, not {executor!r}",
                    location, "'async' for async def, 'thread' for blocking code, "
                    "'process' for CPU-bound work, 'dask' for a Dask cluster")
    if callable(map_function) and not isinstance(map_function, str):
        code = inline_callable(map_function, "process_item", location)
    else:
        code = code_block(map_function, site, site.string_at(1, "map_function"))
    params = {
        "input_field": input_field,
        "output_field": output_field,
        "max_workers": max_workers,
        "batch_size": batch_size,
        "timeout_per_item": float(timeout_per_item) if timeout_per_item is not None else None,
        "continue_on_error": bool(continue_on_error),
        "executor": executor,
    }
    return Node(node_id, "parallel_map", code, NodeOptions(timeout=None, description=description),
                freeze(params), location=location)


def _code_node(
    builder: AsyncWorkflowBuilder, kind: str, node_id: str, code: str, site: CallSite,
    params: Mapping[str, Any], *, code_index: int = 2, options: NodeOptions | None = None,
) -> str:
    block = code_block(code, site, site.string_at(code_index, "code"))
    node = Node(node_id, kind, block, options or NodeOptions(), freeze(dict(params)),
                location=site.location)
    return builder.add_node(node)


class AsyncPatterns:
    """The guide's patterns: each adds one node (or two, or three) to a builder."""

    @staticmethod
    def rate_limited(
        builder: AsyncWorkflowBuilder, node_id: str, code: str, *,
        requests_per_second: float = 10.0, burst_size: int | None = None,
        shared: str | None = None, **options: Any,
    ) -> str:
        """Run `code` at most `requests_per_second` times a second (bursts of `burst_size`),
        counted across every run in the process, or, with `shared` naming a Redis
        resource, across every process using that Redis."""
        site = caller_site()
        _positive(requests_per_second, "requests_per_second", site.location)
        _positive(burst_size, "burst_size", site.location, allow_none=True, integer=True)
        return _code_node(builder, "rate_limited", node_id, code, site,
                          {"requests_per_second": float(requests_per_second),
                           "burst_size": burst_size, "shared": shared},
                          options=_shared_options(builder, site, options, shared))

    @staticmethod
    def parallel_fetch(
        builder: AsyncWorkflowBuilder, node_id: str, operations: Mapping[str, str], *,
        timeout_per_operation: float | None = 30.0, continue_on_error: bool = True,
        **options: Any,
    ) -> str:
        """Run every code string in `operations` concurrently; output
        `{successful: {key: result}, failed: {key: message}, statistics}`."""
        site = caller_site()
        _positive(timeout_per_operation, "timeout_per_operation", site.location, allow_none=True)
        if not isinstance(operations, Mapping) or not operations:
            raise error("KF016", "operations must be a non-empty dict of name -> code",
                        site.location, 'e.g. {"customers": "result = await crm.get(...)"}')
        codes = tuple(
            (str(key), code_block(text, site, site.dict_value_at(2, "operations", key)))
            for key, text in operations.items()
        )
        node = Node(
            node_id, "parallel_fetch", None, _options(builder, site, options),
            freeze({"timeout_per_operation": timeout_per_operation,
                    "continue_on_error": bool(continue_on_error)}),
            location=site.location, codes=codes,
        )
        return builder.add_node(node)

    @staticmethod
    def circuit_breaker(
        builder: AsyncWorkflowBuilder, node_id: str, code: str, *,
        failure_threshold: int = 5, reset_timeout: float = 60.0, shared: str | None = None,
        **options: Any,
    ) -> str:
        """Guard `code` with a circuit breaker shared by every run in the process, or, with
        `shared` naming a Redis resource, by every process using that Redis."""
        site = caller_site()
        _positive(failure_threshold, "failure_threshold", site.location, integer=True)
        _positive(reset_timeout, "reset_timeout", site.location)
        return _code_node(builder, "circuit_breaker", node_id, code, site,
                          {"failure_threshold": failure_threshold,
                           "reset_timeout": float(reset_timeout), "shared": shared},
                          options=_shared_options(builder, site, options, shared))

    @staticmethod
    def timeout_with_fallback(
        builder: AsyncWorkflowBuilder, primary_id: str, fallback_id: str,
        primary_code: str, fallback_code: str, *, timeout_seconds: float = 30.0,
    ) -> tuple[str, str]:
        """Two nodes: the primary, limited to `timeout_seconds`; the fallback, whose code
        runs only if the primary raised or timed out, and which otherwise passes the
        primary's output through."""
        site = caller_site()
        _positive(timeout_seconds, "timeout_seconds", site.location)
        primary = code_block(primary_code, site, site.string_at(3, "primary_code"))
        fallback = code_block(fallback_code, site, site.string_at(4, "fallback_code"))
        builder.add_node(Node(
            primary_id, "fallback_primary", primary,
            NodeOptions(timeout=float(timeout_seconds)),
            freeze({"fallback": fallback_id}), location=site.location,
        ))
        builder.add_node(Node(
            fallback_id, "fallback", fallback, NodeOptions(),
            freeze({"primary": primary_id}), location=site.location,
        ))
        builder.add_dependency(primary_id, fallback_id, site.location)
        return primary_id, fallback_id

    @staticmethod
    def cache_aside(
        builder: AsyncWorkflowBuilder, check_id: str, fetch_id: str, store_id: str,
        fetch_code: str, *, cache_resource: str = "cache",
        cache_key_template: str = "{key}", ttl_seconds: float | None = 3600,
    ) -> tuple[str, str, str]:
        """Three nodes: look the key up, fetch on a miss (only then does `fetch_code`
        run), store what was fetched with the TTL. The store node's output is the data."""
        site = caller_site()
        _positive(ttl_seconds, "ttl_seconds", site.location, allow_none=True)
        fields = _template_fields(cache_key_template, site.location)
        group = {"check": check_id, "fetch": fetch_id, "store": store_id,
                 "cache": cache_resource, "key_template": cache_key_template,
                 "key_fields": fields, "ttl_seconds": ttl_seconds}
        fetch = code_block(fetch_code, site, site.string_at(4, "fetch_code"))
        options = NodeOptions(required_resources=(cache_resource,))
        builder.add_node(Node(check_id, "cache_check", None, options, freeze(group),
                              location=site.location))
        builder.add_node(Node(fetch_id, "cache_fetch", fetch, NodeOptions(), freeze(group),
                              location=site.location))
        builder.add_node(Node(store_id, "cache_store", None, options, freeze(group),
                              location=site.location))
        builder.add_dependency(check_id, fetch_id, site.location)
        builder.add_dependency(fetch_id, store_id, site.location)
        return check_id, fetch_id, store_id

    @staticmethod
    def retry_with_backoff(
        builder: AsyncWorkflowBuilder, node_id: str, code: str, *,
        max_retries: int = 3, initial_backoff: float = 1.0, backoff_factor: float = 2.0,
        max_backoff: float = 60.0,
        retry_on: Sequence[str | type[BaseException]] | None = None, **options: Any,
    ) -> str:
        """Run `code`, retrying (up to `max_retries` attempts in all) on `retry_on`
        exceptions with exponential backoff and jitter; attempts go to the envelope."""
        site = caller_site()
        _positive(max_retries, "max_retries", site.location, integer=True)
        retry = RetrySpec(
            max_attempts=max_retries, initial_delay=float(initial_backoff),
            backoff_factor=float(backoff_factor), max_delay=float(max_backoff),
            retry_exceptions=tuple(exception_name(e) for e in (retry_on or ("Exception",))),
        )
        base = _options(builder, site, options)
        node_options = NodeOptions(base.timeout, retry, base.error_handler,
                                   base.required_resources, base.description)
        return _code_node(builder, "retry_with_backoff", node_id, code, site, {},
                          options=node_options)

    @staticmethod
    def batch_processor(
        builder: AsyncWorkflowBuilder, node_id: str, code: str, *,
        batch_size: int = 100, flush_interval: float | None = None, **options: Any,
    ) -> str:
        """Run `code` once per chunk of `batch_size` items (`items` is the chunk; it
        appends to or assigns `batch_results`); output `{results, processed_count, batches}`."""
        site = caller_site()
        _positive(batch_size, "batch_size", site.location, integer=True)
        _positive(flush_interval, "flush_interval", site.location, allow_none=True)
        return _code_node(builder, "batch_processor", node_id, code, site,
                          {"batch_size": batch_size, "flush_interval": flush_interval},
                          options=_options(builder, site, options))


def _options(builder: AsyncWorkflowBuilder, site: CallSite, options: dict[str, Any]) -> NodeOptions:
    allowed = {"timeout", "retry_policy", "error_handler", "required_resources", "description"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise error("KF016", f"unknown option(s) {', '.join(unknown)}", site.location,
                    f"patterns take {', '.join(sorted(allowed))}")
    return builder.node_options(
        site,
        timeout=options.get("timeout", 30),
        retry_policy=options.get("retry_policy"),
        error_handler=options.get("error_handler"),
        required_resources=options.get("required_resources"),
        description=options.get("description"),
    )


def _shared_options(builder: AsyncWorkflowBuilder, site: CallSite, options: dict[str, Any],
                    shared: str | None) -> NodeOptions:
    """The node's options; a `shared` state store is a resource the node requires."""
    base = _options(builder, site, options)
    if shared is None:
        return base
    if not isinstance(shared, str) or not shared.isidentifier():
        raise error("KF016", f"shared must name a Redis resource, not {shared!r}", site.location,
                    "declare one with with_cache('cache', ...) and pass shared='cache'")
    required = (*base.required_resources, *(() if shared in base.required_resources
                                            else (shared,)))
    return NodeOptions(base.timeout, base.retry, base.error_handler, required, base.description)


def _template_fields(template: str, location: SourceLocation | None) -> tuple[str, ...]:
    import string

    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise error("KF016", f"cache_key_template {template!r}: {exc}", location,
                    "write fields as {name}, e.g. 'user_{user_id}'") from None
    fields = []
    for _, field_name, _, _ in parsed:
        if field_name is None:
            continue
        root = field_name.split(".")[0].split("[")[0]
        if not root.isidentifier():
            raise error("KF016", f"cache_key_template {template!r}: field {field_name!r} is "
                        "not a name", location, "write fields as {name}")
        if root not in fields:
            fields.append(root)
    return tuple(fields)
