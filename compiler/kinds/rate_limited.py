"""`rate_limited`: run the code at most `requests_per_second` times a second, in bursts of
`burst_size`, counted across every run in the process (or, with `shared=` naming a Redis
resource, across every process using it); output the code's `result`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kflow.errors import Diagnostic
from kflow.ir import Node
from kflow.kinds._authoring import add_guarded_code, checked_call, located
from kflow.kinds._base import Kind
from kflow.kinds._shared import shared_key, shared_state_check
from kflow.locate import caller_site
from kflow.pieces import Emitted
from kflow.pysource import Ident
from kflow.values import (
    Params,
    optional_identifier,
    optional_positive_int,
    param,
    positive_number,
)

if TYPE_CHECKING:
    from kflow.analyze import NodeAnalysis
    from kflow.builder import AsyncWorkflowBuilder
    from kflow.code_analysis import CodeAnalysis, StaticKeys
    from kflow.codegen import ModuleBuilder


@dataclass(frozen=True)
class RateLimitedParams(Params):
    requests_per_second: float = param(positive_number, 10.0)
    burst_size: int | None = param(optional_positive_int, None)
    shared: str | None = param(optional_identifier, None)  # a Redis resource holding the bucket


class RateLimitedKind(Kind):
    name = "rate_limited"
    label = "rate limited"
    Params = RateLimitedParams

    def resources(self, node: Node) -> tuple[str, ...]:
        return (node.params.shared,) if node.params.shared else ()

    def check_graph(self, node: Node, workflow: Any) -> list[Diagnostic]:
        return shared_state_check(node, workflow)

    def output_keys(self, node: Node, code: CodeAnalysis | None) -> StaticKeys | None:
        return code.static_keys if code is not None else None

    def emit(self, m: ModuleBuilder, a: NodeAnalysis) -> Emitted:
        params: RateLimitedParams = a.node.params
        code_params = m.params_for(a, a.code)
        code = m.code_function(a, a.code, "code", code_params,
                               title=m.title(a, "rate-limited code"))
        rps = params.requests_per_second
        piece = m.piece("patterns/rate_limited.py.j2", {
            "node_id": a.node.id, "name": m.scope.define("node", a.node.id),
            "params": m.node_params(a), "code_params": code_params,
            "state": m.scope.define("limiter", a.node.id), "rps": rps,
            "burst": params.burst_size or max(1, int(rps)), "code_fn": code.name,
            "key": shared_key(m, a.node, "rate"),
            "shared": Ident(params.shared) if params.shared else None,
        })
        return Emitted([code, piece], piece.p["name"])


@checked_call("KF016")
def rate_limited(
    builder: AsyncWorkflowBuilder, node_id: str, code: str, *,
    requests_per_second: float = 10.0, burst_size: int | None = None,
    shared: str | None = None, timeout: float | None = 30, retry_policy: Any = None,
    error_handler: Any = None, required_resources: Sequence[str] | None = None,
    description: str | None = None,
) -> str:
    """Run `code` at most `requests_per_second` times a second (bursts of `burst_size`),
    counted across every run in the process, or, with `shared` naming a Redis
    resource, across every process using that Redis."""
    site = caller_site()
    with located(site.location, "KF016"):
        params = RateLimitedParams(requests_per_second, burst_size, shared)
    return add_guarded_code(
        builder, "rate_limited", node_id, code, site, params, shared=shared, timeout=timeout,
        retry_policy=retry_policy, error_handler=error_handler,
        required_resources=required_resources, description=description,
    )


KINDS = (RateLimitedKind(),)
PATTERNS = {"rate_limited": rate_limited}
