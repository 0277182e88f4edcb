"""`batch_processor`: run the code once per chunk of `batch_size` items (`items` bound to
the chunk; it appends to or assigns `batch_results`); output `{results, processed_count,
batches}`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kflow.ir import Node
from kflow.kinds._authoring import checked_call, code_block, located, node_options
from kflow.kinds._base import CodeRole, Kind, fixed_keys
from kflow.locate import caller_site
from kflow.pieces import Emitted, Param
from kflow.pysource import Ident
from kflow.values import Params, limit, param, positive_int

if TYPE_CHECKING:
    from kflow.analyze import NodeAnalysis
    from kflow.builder import AsyncWorkflowBuilder
    from kflow.code_analysis import CodeAnalysis, StaticKeys
    from kflow.codegen import ModuleBuilder

ITEMS, RESULTS = "items", "batch_results"


@dataclass(frozen=True)
class BatchProcessorParams(Params):
    batch_size: int = param(positive_int, 100)
    # Seconds to wait for a chunk to fill before running it anyway (None or inf: never).
    flush_interval: float | None = param(limit, None)


class BatchProcessorKind(Kind):
    name = "batch_processor"
    label = "batch processor"
    Params = BatchProcessorParams

    def code_role(self, node: Node) -> CodeRole:
        return CodeRole(provided=(ITEMS, RESULTS), returns=RESULTS, always_return=True)

    def reads(self, node: Node) -> tuple[str, ...]:
        return (ITEMS,)

    def output_keys(self, node: Node, code: CodeAnalysis | None) -> StaticKeys | None:
        return fixed_keys("results", "processed_count", "batches")

    def emit(self, m: ModuleBuilder, a: NodeAnalysis) -> Emitted:
        params: BatchProcessorParams = a.node.params
        wrapper_params = m.node_params(a)
        inner = m.params_for(a, a.code, drop=(ITEMS, RESULTS))
        code = m.code_function(
            a, a.code, "code", [Param(Ident(ITEMS)), Param(Ident(RESULTS)), *inner],
            title=m.title(a, "run once per batch of `items`"),
        )
        local = m.scope.function(p.name for p in wrapper_params)
        piece = m.piece("patterns/batch_processor.py.j2", {
            "name": m.scope.define("node", a.node.id), "params": wrapper_params,
            "code_fn": code.name, "code_params": inner, "batch_size": params.batch_size,
            "flush_interval": params.flush_interval,
            "process_batch": local.local("process_batch"), "chunk": local.local("chunk"),
        })
        return Emitted([code, piece], piece.p["name"])


@checked_call("KF016")
def batch_processor(
    builder: AsyncWorkflowBuilder, node_id: str, code: str, *,
    batch_size: int = 100, flush_interval: float | None = None,
    timeout: float | None = 30, retry_policy: Any = None, error_handler: Any = None,
    required_resources: Sequence[str] | None = None, description: str | None = None,
) -> str:
    """Run `code` once per chunk of `batch_size` items (`items` is the chunk; it
    appends to or assigns `batch_results`); output `{results, processed_count, batches}`."""
    site = caller_site()
    with located(site.location, "KF016"):
        params = BatchProcessorParams(batch_size, flush_interval)
    options = node_options(site, timeout=timeout, retry_policy=retry_policy,
                           error_handler=error_handler, required_resources=required_resources,
                           description=description)
    block = code_block(code, site, site.string_at(2, "code"))
    return builder.add_node(builder.node(node_id, "batch_processor", site, code=block,
                                         params=params, options=options))


KINDS = (BatchProcessorKind(),)
PATTERNS = {"batch_processor": batch_processor}
