"""`parallel_fetch`: every code string of `operations` concurrently, each under its own
timeout; output `{successful: {key: result}, failed: {key: message}, statistics}`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kflow.errors import error
from kflow.ir import Node
from kflow.kinds._authoring import checked_call, code_block, located, node_options
from kflow.kinds._base import Kind, fixed_keys
from kflow.locate import caller_site
from kflow.pieces import Emitted
from kflow.values import BadValue, Params, flag, limit, param

if TYPE_CHECKING:
    from kflow.analyze import NodeAnalysis
    from kflow.builder import AsyncWorkflowBuilder
    from kflow.code_analysis import CodeAnalysis, StaticKeys
    from kflow.codegen import ModuleBuilder


@dataclass(frozen=True)
class ParallelFetchParams(Params):
    # Seconds per operation; None (or inf) for no limit.
    timeout_per_operation: float | None = param(limit, 30.0)
    continue_on_error: bool = param(flag, True)


class ParallelFetchKind(Kind):
    name = "parallel_fetch"
    label = "parallel fetch"
    Params = ParallelFetchParams
    has_code = False

    def check_node(self, node: Node) -> None:
        if node.code is not None:
            raise BadValue("a parallel_fetch node has its code in `codes`, one per operation")
        if not node.codes:
            raise BadValue("a parallel_fetch node needs at least one operation")
        keys = [key for key, _ in node.codes]
        if len(set(keys)) != len(keys):
            raise BadValue("parallel_fetch operation names must be unique")

    def output_keys(self, node: Node, code: CodeAnalysis | None) -> StaticKeys | None:
        return fixed_keys("successful", "failed", "statistics")

    def emit(self, m: ModuleBuilder, a: NodeAnalysis) -> Emitted:
        params: ParallelFetchParams = a.node.params
        pieces: list = []
        operations = []
        for key, code in a.extra_codes:
            code_params = m.params_for(a, code)
            fn = m.code_function(a, code, "fetch", code_params, hint=f"{a.node.id}_{key}",
                                 title=m.title(a, f"operation {key!r}"))
            pieces.append(fn)
            operations.append((key, fn.name, code_params))
        wrapper_params = m.node_params(a)
        local = m.scope.function(p.name for p in wrapper_params)
        piece = m.piece("patterns/parallel_fetch.py.j2", {
            "name": m.scope.define("node", a.node.id), "params": wrapper_params,
            "operations": operations, "timeout": params.timeout_per_operation,
            "continue_on_error": params.continue_on_error,
            "table": local.local("operations"),
        })
        return Emitted([*pieces, piece], piece.p["name"])


@checked_call("KF016")
def parallel_fetch(
    builder: AsyncWorkflowBuilder, node_id: str, operations: Mapping[str, str], *,
    timeout_per_operation: float | None = 30.0, continue_on_error: bool = True,
    timeout: float | None = 30, retry_policy: Any = None, error_handler: Any = None,
    required_resources: Sequence[str] | None = None, description: str | None = None,
) -> str:
    """Run every code string in `operations` concurrently; output
    `{successful: {key: result}, failed: {key: message}, statistics}`."""
    site = caller_site()
    with located(site.location, "KF016"):
        params = ParallelFetchParams(timeout_per_operation, continue_on_error)
    if not isinstance(operations, Mapping) or not operations:
        raise error("KF016", "operations must be a non-empty dict of name -> code",
                    site.location, 'e.g. {"customers": "result = await crm.get(...)"}')
    if not all(isinstance(key, str) for key in operations):
        raise error("KF016", "operation names must be strings", site.location,
                    'e.g. {"customers": "result = await crm.get(...)"}')
    codes = tuple(
        (key, code_block(text, site, site.dict_value_at(2, "operations", key)))
        for key, text in operations.items()
    )
    options = node_options(site, timeout=timeout, retry_policy=retry_policy,
                           error_handler=error_handler, required_resources=required_resources,
                           description=description)
    return builder.add_node(builder.node(node_id, "parallel_fetch", site, params=params,
                                         options=options, codes=codes))


KINDS = (ParallelFetchKind(),)
PATTERNS = {"parallel_fetch": parallel_fetch}
