"""What each pattern node contributes to the module.

A pattern node's user code becomes a plain code function, exactly like a code
node's (so its lines map back to workflow.py the same way); the pattern adds a
wrapper around it — and module-level state where the pattern needs some — from
its template in `templates/patterns/`. The wrapper is what `ctx.call` runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kflow.analyze import NodeAnalysis
from kflow.codegen import Emitted, Param, PatternPiece, _params, params_for
from kflow.errors import error
from kflow.layout import literal
from kflow.pysource import py

if TYPE_CHECKING:
    from kflow.codegen import ModuleBuilder

def _code_title(analysis: NodeAnalysis, role: str) -> str:
    return f"Node {py(analysis.node.id)}, {role}"


def _shared_key(m: ModuleBuilder, a: NodeAnalysis, what: str) -> str | None:
    """The Redis key of state shared across processes: the same for every process
    running this module, different for every node."""
    if not a.node.params.get("shared"):
        return None
    return f"kflow:{m.workflow.name}:{a.node.id}:{what}"


def rate_limited(m: ModuleBuilder, a: NodeAnalysis) -> Emitted:
    key = _shared_key(m, a, "rate")
    code_params = params_for(a, a.code)
    code = m.code_function(a, a.code, "code", code_params,
                           title=_code_title(a, "rate-limited code"))
    rps = a.node.params["requests_per_second"]
    burst = a.node.params["burst_size"] or max(1, int(rps))
    piece = PatternPiece("patterns/rate_limited.py.j2", {
        "node_id": a.node.id, "name": m.names.allocate("node", a.node.id),
        "params": _params(a), "code_params": code_params,
        "state": m.names.allocate("limiter", a.node.id), "rps": rps, "burst": burst,
        "code_fn": code.name, "key": key, "shared": a.node.params.get("shared"),
    })
    return Emitted([code, piece], piece.p["name"])


def circuit_breaker(m: ModuleBuilder, a: NodeAnalysis) -> Emitted:
    key = _shared_key(m, a, "breaker")
    params = params_for(a, a.code)
    code = m.code_function(a, a.code, "code", params, title=_code_title(a, "guarded code"))
    timeout = a.node.options.timeout
    if timeout is not None:
        m.imports.add("asyncio")
    piece = PatternPiece("patterns/circuit_breaker.py.j2", {
        "node_id": a.node.id, "name": m.names.allocate("node", a.node.id),
        "params": _params(a), "code_params": params, "key": key,
        "shared": a.node.params.get("shared"),
        "state": m.names.allocate("breaker", a.node.id),
        "threshold": a.node.params["failure_threshold"],
        "reset": a.node.params["reset_timeout"], "code_fn": code.name, "timeout": timeout,
    })
    # The breaker times each call itself, so a call that hangs counts as a failure
    # (a timeout around the breaker would cancel it before it could count).
    return Emitted([code, piece], piece.p["name"], call_options={"timeout": None})


def batch_processor(m: ModuleBuilder, a: NodeAnalysis) -> Emitted:
    params = _params(a)
    inner = params_for(a, a.code, drop=("items", "batch_results"))
    code = m.code_function(
        a, a.code, "code", [Param("items"), Param("batch_results"), *inner],
        title=_code_title(a, "run once per batch of `items`"),
    )
    piece = PatternPiece("patterns/batch_processor.py.j2", {
        "name": m.names.allocate("node", a.node.id), "params": params, "code_fn": code.name,
        "code_params": inner, "batch_size": a.node.params["batch_size"],
        "flush_interval": a.node.params["flush_interval"],
    })
    return Emitted([code, piece], piece.p["name"])


def parallel_fetch(m: ModuleBuilder, a: NodeAnalysis) -> Emitted:
    pieces: list = []
    operations = []
    for key, code in a.extra_codes:
        params = params_for(a, code)
        fn = m.code_function(a, code, "fetch", params, hint=f"{a.node.id}_{key}",
                             title=_code_title(a, f"operation {key!r}"))
        pieces.append(fn)
        operations.append((key, fn.name, params))
    piece = PatternPiece("patterns/parallel_fetch.py.j2", {
        "name": m.names.allocate("node", a.node.id), "params": _params(a),
        "operations": operations, "timeout": a.node.params["timeout_per_operation"],
        "continue_on_error": a.node.params["continue_on_error"],
    })
    return Emitted([*pieces, piece], piece.p["name"])


def parallel_map(m: ModuleBuilder, a: NodeAnalysis) -> Emitted:
    node = a.node
    options = node.params
    input_field = options["input_field"]
    executor = options["executor"] or ("async" if a.item_is_async else "thread")
    process = executor == "process"
    code_params = params_for(a, a.code, drop=(input_field,))
    if process:
        if code_params:
            raise error(
                "KF018", f"parallel map {node.id!r}: with executor='process', process_item "
                "runs in other processes and cannot use per-run inputs or resources "
                f"({', '.join(p.name for p in code_params)})", node.location,
                "pass what it needs inside the items, or use executor='thread'",
            )
        if a.item_is_async:
            raise error("KF018", f"parallel map {node.id!r}: executor='process' needs a plain "
                        "`def process_item`", node.location, "use executor='async' for async def")
        m.imports.add("functools")
    code = m.code_function(
        a, a.code, "functions", code_params, is_async=not process,
        decorator="@functools.cache" if process else None,
        title=_code_title(a, "defines process_item"),
    )
    kwargs = [("max_workers", options["max_workers"])]
    if options["batch_size"] is not None:
        kwargs.append(("batch_size", options["batch_size"]))
    kwargs.append(("timeout_per_item", options["timeout_per_item"]))
    if options["continue_on_error"]:
        kwargs.append(("continue_on_error", True))
    if executor != "async":
        kwargs.append(("executor", executor))
    piece = PatternPiece("patterns/parallel_map.py.j2", {
        "name": m.names.allocate("node", node.id), "params": _params(a),
        "code_fn": code.name, "code_params": code_params, "process": process,
        "item_fn": m.names.allocate("item", node.id) if process else None,
        "input_field": input_field, "output_field": options["output_field"],
        "rename": options["output_field"] != "results",
        "options": ", ".join(f"{k}={literal(v)}" for k, v in kwargs),
    })
    return Emitted([code, piece], piece.p["name"])


def fallback(m: ModuleBuilder, a: NodeAnalysis) -> Emitted:
    primary = a.node.params["primary"]
    params = _params(a)
    taken = {p.name for p in params}
    output = _fresh("primary_output", taken)
    failure = _fresh("primary_error", taken)
    code = m.code_function(a, a.code, "code", params, title=_code_title(a, "fallback code"))
    piece = PatternPiece("patterns/fallback.py.j2", {
        "name": m.names.allocate("node", a.node.id), "primary": primary,
        "params": [Param(output), Param(failure), *params], "output_param": output,
        "error_param": failure, "code_fn": code.name, "code_params": params,
    })
    wires = ((output, primary, ()), (failure, primary, None))
    return Emitted([code, piece], piece.p["name"], wires=wires)


def cache_check(m: ModuleBuilder, a: NodeAnalysis) -> Emitted:
    group = a.node.params
    fields = tuple(group["key_fields"])
    piece = PatternPiece("patterns/cache_check.py.j2", {
        "node_id": a.node.id, "name": m.names.allocate("node", a.node.id),
        "params": _params(a), "cache": group["cache"], "cache_param": group["cache"],
        "fetch": group["fetch"], "store": group["store"], "template": group["key_template"],
        "fields": "{" + ", ".join(f"{py(f)}: {f}" for f in fields) + "}",
    })
    return Emitted([piece], piece.p["name"])


def cache_fetch(m: ModuleBuilder, a: NodeAnalysis) -> Emitted:
    group = a.node.params
    params = _params(a)
    lookup = _fresh("lookup", {p.name for p in params})
    code = m.code_function(a, a.code, "code", params,
                           title=_code_title(a, "fetch code, run on a cache miss"))
    piece = PatternPiece("patterns/cache_fetch.py.j2", {
        "name": m.names.allocate("node", a.node.id), "params": [Param(lookup), *params],
        "lookup": lookup, "code_fn": code.name, "code_params": params,
    })
    return Emitted([code, piece], piece.p["name"], wires=((lookup, group["check"], ()),))


def cache_store(m: ModuleBuilder, a: NodeAnalysis) -> Emitted:
    group = a.node.params
    params = _params(a)
    taken = {p.name for p in params}
    lookup, data = _fresh("lookup", taken), _fresh("data", taken)
    piece = PatternPiece("patterns/cache_store.py.j2", {
        "node_id": a.node.id, "name": m.names.allocate("node", a.node.id),
        "params": [Param(lookup), Param(data), *params], "lookup": lookup, "data": data,
        "cache_param": group["cache"], "fetch": group["fetch"], "ttl": group["ttl_seconds"],
    })
    wires = ((lookup, group["check"], ()), (data, group["fetch"], ()))
    return Emitted([piece], piece.p["name"], wires=wires)


def _fresh(name: str, taken: set[str]) -> str:
    while name in taken:
        name = f"_{name}"
    return name


EMITTERS: dict[str, Callable[[ModuleBuilder, NodeAnalysis], Emitted]] = {
    "rate_limited": rate_limited,
    "circuit_breaker": circuit_breaker,
    "batch_processor": batch_processor,
    "parallel_fetch": parallel_fetch,
    "parallel_map": parallel_map,
    "fallback": fallback,
    "cache_check": cache_check,
    "cache_fetch": cache_fetch,
    "cache_store": cache_store,
}
