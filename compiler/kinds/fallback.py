"""`timeout_with_fallback`: two nodes. The primary (`fallback_primary`) runs its code under
the timeout; if it raises or times out, the fallback node (`fallback`) runs its own code,
and otherwise passes the primary's output through."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kflow.errors import Diagnostic
from kflow.ir import Node, NodeOptions, Workflow
from kflow.kinds._authoring import checked_call, code_block, located
from kflow.kinds._base import Kind
from kflow.locate import caller_site
from kflow.pieces import Emitted, Param
from kflow.values import Params, limit, nonempty_text, param

if TYPE_CHECKING:
    from kflow.analyze import NodeAnalysis
    from kflow.builder import AsyncWorkflowBuilder
    from kflow.code_analysis import CodeAnalysis, StaticKeys
    from kflow.codegen import ModuleBuilder


@dataclass(frozen=True)
class PrimaryParams(Params):
    fallback: str = param(nonempty_text)  # the id of its fallback node


@dataclass(frozen=True)
class FallbackParams(Params):
    primary: str = param(nonempty_text)  # the id of the primary node


def _partner(node: Node, workflow: Workflow, partner_id: str, kind: str,
             back: str) -> list[Diagnostic]:
    partner = workflow._by_id.get(partner_id)
    if (partner is None or partner.kind != kind
            or getattr(partner.params, back) != node.id):
        return [Diagnostic("KF003", f"node {node.id!r} is half of a timeout_with_fallback "
                           f"whose other half {partner_id!r} is missing", node.location,
                           "build both with AsyncPatterns.timeout_with_fallback(...)")]
    return []


class PrimaryKind(Kind):
    name = "fallback_primary"
    label = "fallback primary"
    Params = PrimaryParams

    def check_graph(self, node: Node, workflow: Workflow) -> list[Diagnostic]:
        found = _partner(node, workflow, node.params.fallback, "fallback", "primary")
        if not found and not any(c.source == node.id and c.target == node.params.fallback
                                 for c in workflow.connections):
            found.append(Diagnostic(
                "KF003", f"fallback node {node.params.fallback!r} does not run after its "
                f"primary {node.id!r}", node.location,
                "build both with AsyncPatterns.timeout_with_fallback(...)"))
        return found

    def output_keys(self, node: Node, code: CodeAnalysis | None) -> StaticKeys | None:
        return code.static_keys if code is not None else None

    def emit(self, m: ModuleBuilder, a: NodeAnalysis) -> Emitted:
        emitted = m.code_node(a)
        emitted.call_options["on_error"] = m.recover()
        return emitted


class FallbackKind(Kind):
    name = "fallback"
    label = "fallback"
    Params = FallbackParams

    def check_graph(self, node: Node, workflow: Workflow) -> list[Diagnostic]:
        return _partner(node, workflow, node.params.primary, "fallback_primary", "fallback")

    def emit(self, m: ModuleBuilder, a: NodeAnalysis) -> Emitted:
        primary = a.node.params.primary
        params = m.node_params(a)
        local = m.scope.function(p.name for p in params)
        output, failure = local.local("primary_output"), local.local("primary_error")
        code = m.code_function(a, a.code, "code", params, title=m.title(a, "fallback code"))
        piece = m.piece("patterns/fallback.py.j2", {
            "name": m.scope.define("node", a.node.id), "primary": primary,
            "params": [Param(output), Param(failure), *params], "output_param": output,
            "error_param": failure, "code_fn": code.name, "code_params": params,
        })
        wires = ((output, primary, ()), (failure, primary, None))
        return Emitted([code, piece], piece.p["name"], wires=wires)


@checked_call("KF016")
def timeout_with_fallback(
    builder: AsyncWorkflowBuilder, primary_id: str, fallback_id: str,
    primary_code: str, fallback_code: str, *, timeout_seconds: float = 30.0,
) -> tuple[str, str]:
    """Two nodes: the primary, limited to `timeout_seconds` (None or inf: no limit); the
    fallback, whose code runs only if the primary raised or timed out, and which
    otherwise passes the primary's output through."""
    site = caller_site()
    with located(site.location, "KF016"):
        timeout = limit(timeout_seconds, "timeout_seconds")
        primary_params, fallback_params = PrimaryParams(fallback_id), FallbackParams(primary_id)
    primary = code_block(primary_code, site, site.string_at(3, "primary_code"))
    fallback = code_block(fallback_code, site, site.string_at(4, "fallback_code"))
    builder.add_node(builder.node(primary_id, "fallback_primary", site, code=primary,
                                  params=primary_params, options=NodeOptions(timeout=timeout)))
    builder.add_node(builder.node(fallback_id, "fallback", site, code=fallback,
                                  params=fallback_params))
    builder.add_dependency(primary_id, fallback_id, site.location)
    return primary_id, fallback_id


KINDS: tuple[Any, ...] = (PrimaryKind(), FallbackKind())
PATTERNS = {"timeout_with_fallback": timeout_with_fallback}
