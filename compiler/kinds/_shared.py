"""State a pattern keeps in Redis (`shared=`), for rate_limited and circuit_breaker."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kflow.errors import Diagnostic
from kflow.ir import Node

if TYPE_CHECKING:
    from kflow.codegen import ModuleBuilder


def shared_state_check(node: Node, workflow: Any) -> list[Diagnostic]:
    """`shared=` must name a Redis resource (a cache) of the workflow."""
    shared = node.params.shared
    kinds = {r.name: r.kind for r in workflow.resources}
    if shared and kinds.get(shared) not in ("cache", "injected"):
        return [Diagnostic(
            "KF006", f"node {node.id!r}: shared={shared!r} is not a Redis resource "
            f"(it is {kinds[shared] if shared in kinds else 'not declared'})",
            node.location, f"declare it with builder.with_cache({shared!r}, ...)",
        )]
    return []


def shared_key(m: ModuleBuilder, node: Node, what: str) -> str | None:
    """The Redis key of state shared across processes: the same for every process
    running this module, different for every node."""
    if not node.params.shared:
        return None
    return f"kflow:{m.workflow.name}:{node.id}:{what}"
