"""`resource`: one operation on a resource (`builder.add_resource_node`), e.g. a database
`fetch` with bound parameters; its output is the operation's plain value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kflow.ir import Node
from kflow.kinds._authoring import checked_call, located, node_options
from kflow.kinds._base import Kind
from kflow.locate import caller_site
from kflow.pieces import Emitted, NodeFunction, Param
from kflow.pysource import Code, Ident, literal
from kflow.templating import render
from kflow.values import FrozenDict, Params, identifier, json_object, nonempty_text, param, thaw

if TYPE_CHECKING:
    from kflow.analyze import NodeAnalysis
    from kflow.builder import AsyncWorkflowBuilder
    from kflow.codegen import ModuleBuilder


@dataclass(frozen=True)
class ResourceParams(Params):
    resource: str = param(identifier)
    operation: str = param(nonempty_text)
    # The operation's arguments: {"query": ..., "params": [...]} for a database.
    params: FrozenDict = param(json_object, FrozenDict())


class ResourceKind(Kind):
    name = "resource"
    label = "resource"
    Params = ResourceParams
    has_code = False

    def resources(self, node: Node) -> tuple[str, ...]:
        return (node.params.resource,)

    def emit(self, m: ModuleBuilder, a: NodeAnalysis) -> Emitted:
        node = a.node
        params: ResourceParams = node.params
        resource = Ident(params.resource)
        body = render(
            "resource_node.py.j2", rt=m.rt, resource=resource,
            kind=m.resource_kind(params.resource), operation=params.operation,
            params=literal(thaw(params.params)),
        )
        fn = NodeFunction(node.id, m.scope.define("node", node.id), node.kind,
                          m.location(node), node.options.description, [Param(resource)],
                          Code(body.rstrip("\n")), title=f"Node {literal(node.id)}")
        return Emitted([fn], fn.name)


@checked_call("KF011")
def add_resource_node(
    builder: AsyncWorkflowBuilder,
    node_id: str,
    resource_name: str,
    operation: str,
    params: Mapping[str, Any] | None = None,
    *,
    timeout: float | None = 30,
    retry_policy: Any = None,
    error_handler: Any = None,
    description: str | None = None,
) -> str:
    """Add a node that calls `operation` on a resource (e.g. a database `fetch`)."""
    site = caller_site()
    with located(site.location, "KF014"):
        identifier(resource_name, "resource name")
    options = node_options(site, timeout=timeout, retry_policy=retry_policy,
                           error_handler=error_handler, required_resources=[resource_name],
                           description=description)
    with located(site.location, "KF019"):
        node_params = ResourceParams(resource_name, operation, params or {})
    return builder.add_node(builder.node(node_id, "resource", site, options=options,
                                         params=node_params))


KINDS = (ResourceKind(),)
