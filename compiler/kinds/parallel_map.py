"""`parallel_map`: `process_item` over every item of an input, at most `max_workers` at
a time (`builder.add_parallel_map`); output `{results, errors, statistics}`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kflow.errors import Diagnostic, error
from kflow.inline import inline_callable
from kflow.ir import Node, NodeOptions
from kflow.kinds._authoring import checked_call, code_block, located
from kflow.kinds._base import CodeRole, Kind, fixed_keys
from kflow.layout import literal as flat
from kflow.locate import caller_site
from kflow.pieces import Emitted
from kflow.pysource import Code, Ident
from kflow.values import (
    BadValue,
    Params,
    choice,
    flag,
    identifier,
    limit,
    optional_positive_int,
    optional_text,
    param,
    positive_int,
)

if TYPE_CHECKING:
    from kflow.analyze import NodeAnalysis
    from kflow.builder import AsyncWorkflowBuilder
    from kflow.code_analysis import CodeAnalysis, StaticKeys
    from kflow.codegen import ModuleBuilder

EXECUTORS = ("async", "thread", "process", "dask")


@dataclass(frozen=True)
class ParallelMapParams(Params):
    input_field: str = param(identifier, "items")
    output_field: str = param(identifier, "results")
    max_workers: int = param(positive_int, 10)
    batch_size: int | None = param(optional_positive_int, None)
    # Seconds per item; None (or inf) for no limit.
    timeout_per_item: float | None = param(limit, 5.0)
    continue_on_error: bool = param(flag, False)
    executor: str | None = param(choice(EXECUTORS), None)

    def validate(self) -> None:
        if self.output_field in ("errors", "statistics"):
            raise BadValue(f"output_field {self.output_field!r} would hide the map's own "
                           "key of that name", "the default is output_field='results'")


class ParallelMapKind(Kind):
    name = "parallel_map"
    label = "parallel map"
    Params = ParallelMapParams

    def code_role(self, node: Node) -> CodeRole:
        return CodeRole(returns="process_item")

    def reads(self, node: Node) -> tuple[str, ...]:
        return (node.params.input_field,)

    def output_keys(self, node: Node, code: CodeAnalysis | None) -> StaticKeys | None:
        return fixed_keys(node.params.output_field, "errors", "statistics")

    def check_code(self, node: Node, code: CodeAnalysis | None) -> list[Diagnostic]:
        if code is not None and code.defines.get("process_item") is None:
            return [Diagnostic(
                "KF017", f"parallel map {node.id!r}: its code does not define process_item",
                node.location, "define `async def process_item(item): ...` (or a plain def)",
            )]
        return []

    def emit(self, m: ModuleBuilder, a: NodeAnalysis) -> Emitted:
        node = a.node
        options: ParallelMapParams = node.params
        assert a.code is not None
        item_is_async = a.code.defines.get("process_item")
        input_field = options.input_field
        executor = options.executor or ("async" if item_is_async else "thread")
        process = executor == "process"
        code_params = m.params_for(a, a.code, drop=(input_field,))
        if process:
            if code_params:
                raise error(
                    "KF018", f"parallel map {node.id!r}: with executor='process', "
                    "process_item runs in other processes and cannot use per-run inputs or "
                    f"resources ({', '.join(p.name for p in code_params)})", node.location,
                    "pass what it needs inside the items, or use executor='thread'",
                )
            if item_is_async:
                raise error("KF018", f"parallel map {node.id!r}: executor='process' needs a "
                            "plain `def process_item`", node.location,
                            "use executor='async' for async def")
        functools_name = m.scope.module("functools") if process else None
        code = m.code_function(
            a, a.code, "functions", code_params, is_async=not process,
            decorator=Code(f"@{functools_name}.cache") if process else None,
            title=m.title(a, "defines process_item"),
        )
        kwargs: list[tuple[str, Any]] = [("max_workers", options.max_workers)]
        if options.batch_size is not None:
            kwargs.append(("batch_size", options.batch_size))
        kwargs.append(("timeout_per_item", options.timeout_per_item))
        if options.continue_on_error:
            kwargs.append(("continue_on_error", True))
        if executor != "async":
            kwargs.append(("executor", executor))
        params = m.node_params(a)
        item_fn = m.scope.define("item", node.id) if process else None
        local = m.scope.function(p.name for p in params)
        piece = m.piece("patterns/parallel_map.py.j2", {
            "name": m.scope.define("node", node.id), "params": params,
            "code_fn": code.name, "code_params": code_params, "process": process,
            "item_fn": item_fn, "item": m.scope.function().local("item"),
            "input_field": Ident(input_field), "output_field": options.output_field,
            "rename": options.output_field != "results",
            "process_item": local.local("process_item"),
            "outcome": local.local("outcome"),
            "options": Code(", ".join(f"{k}={flat(v)}" for k, v in kwargs)),
        })
        return Emitted([code, piece], piece.p["name"])


@checked_call("KF016")
def add_parallel_map(
    builder: AsyncWorkflowBuilder,
    node_id: str,
    map_function: str | Callable[..., Any],
    *,
    input_field: str = "items",
    output_field: str = "results",
    max_workers: int = 10,
    batch_size: int | None = None,
    timeout_per_item: float | None = 5,
    continue_on_error: bool = False,
    executor: str | None = None,
    description: str | None = None,
) -> str:
    """Apply `process_item` (defined by the code, or the callable itself) to every item
    of the input `input_field`, at most `max_workers` at a time; output
    `{output_field: [...], "errors": [...], "statistics": {...}}`.

    `timeout_per_item` is seconds (None or `float('inf')`: no limit).
    """
    site = caller_site()
    location = site.location
    with located(location, "KF016"):
        params = ParallelMapParams(input_field, output_field, max_workers, batch_size,
                                   timeout_per_item, continue_on_error, executor)
        optional_text(description, "description")
    if callable(map_function) and not isinstance(map_function, str):
        code = inline_callable(map_function, "process_item", location)
    else:
        code = code_block(map_function, site, site.string_at(1, "map_function"))
    return builder.add_node(builder.node(
        node_id, "parallel_map", site, code=code, params=params,
        options=NodeOptions(timeout=None, description=description),
    ))


KINDS = (ParallelMapKind(),)
