"""`circuit_breaker`: guard the code with a breaker shared by every run in the process (or,
with `shared=` naming a Redis resource, by every process using it). Output: the code's
`result` with `"success": True`, or `{"success": False, "error", "error_type",
"circuit_state"}`."""

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
from kflow.pysource import Code, Ident
from kflow.values import Params, optional_identifier, param, positive_int, positive_number

if TYPE_CHECKING:
    from kflow.analyze import NodeAnalysis
    from kflow.builder import AsyncWorkflowBuilder
    from kflow.codegen import ModuleBuilder


@dataclass(frozen=True)
class CircuitBreakerParams(Params):
    failure_threshold: int = param(positive_int, 5)
    reset_timeout: float = param(positive_number, 60.0)  # seconds open before one trial call
    shared: str | None = param(optional_identifier, None)  # a Redis resource holding the state


class CircuitBreakerKind(Kind):
    name = "circuit_breaker"
    label = "circuit breaker"
    Params = CircuitBreakerParams

    def resources(self, node: Node) -> tuple[str, ...]:
        return (node.params.shared,) if node.params.shared else ()

    def check_graph(self, node: Node, workflow: Any) -> list[Diagnostic]:
        return shared_state_check(node, workflow)

    def emit(self, m: ModuleBuilder, a: NodeAnalysis) -> Emitted:
        params: CircuitBreakerParams = a.node.params
        code_params = m.params_for(a, a.code)
        code = m.code_function(a, a.code, "code", code_params, title=m.title(a, "guarded code"))
        timeout = a.node.options.timeout
        wrapper_params = m.node_params(a)
        local = m.scope.function(p.name for p in wrapper_params)
        key = shared_key(m, a.node, "breaker")
        state = m.scope.define("breaker", a.node.id)
        shared = Ident(params.shared) if params.shared else None
        piece = m.piece("patterns/circuit_breaker.py.j2", {
            "node_id": a.node.id, "name": m.scope.define("node", a.node.id),
            "params": wrapper_params, "code_params": code_params, "key": key,
            "shared": shared, "state": state,
            # `breaker.call(` (with the Redis client first, for a shared breaker)
            "call": Code(f"{state}.call({shared}, " if key else f"{state}.call("),
            "threshold": params.failure_threshold, "reset": params.reset_timeout,
            "code_fn": code.name, "timeout": timeout,
            "asyncio": local.module_name("asyncio") if timeout is not None else None,
        })
        # The breaker times each call itself, so a call that hangs counts as a failure
        # (a timeout around the breaker would cancel it before it could count).
        return Emitted([code, piece], piece.p["name"], call_options={"timeout": None})


@checked_call("KF016")
def circuit_breaker(
    builder: AsyncWorkflowBuilder, node_id: str, code: str, *,
    failure_threshold: int = 5, reset_timeout: float = 60.0, shared: str | None = None,
    timeout: float | None = 30, retry_policy: Any = None, error_handler: Any = None,
    required_resources: Sequence[str] | None = None, description: str | None = None,
) -> str:
    """Guard `code` with a circuit breaker shared by every run in the process, or, with
    `shared` naming a Redis resource, by every process using that Redis."""
    site = caller_site()
    with located(site.location, "KF016"):
        params = CircuitBreakerParams(failure_threshold, reset_timeout, shared)
    return add_guarded_code(
        builder, "circuit_breaker", node_id, code, site, params, shared=shared, timeout=timeout,
        retry_policy=retry_policy, error_handler=error_handler,
        required_resources=required_resources, description=description,
    )


KINDS = (CircuitBreakerKind(),)
PATTERNS = {"circuit_breaker": circuit_breaker}
