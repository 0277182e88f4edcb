"""`cache_aside`: three nodes. `cache_check` looks the key up; `cache_fetch` runs the fetch
code only on a miss; `cache_store` stores what was fetched with the TTL and outputs the
data (as a later hit will read it back, so both paths hand on the same types). Inputs
connected to any of the three are visible to the fetch code."""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kflow.errors import Diagnostic
from kflow.ir import Node, NodeOptions, Workflow
from kflow.kinds._authoring import checked_call, code_block, located
from kflow.kinds._base import Kind
from kflow.locate import caller_site
from kflow.pieces import Emitted, Param
from kflow.pysource import Code, Ident, literal
from kflow.values import (
    BadValue,
    Params,
    identifier,
    identifiers,
    limit,
    nonempty_text,
    param,
    text,
)

if TYPE_CHECKING:
    from kflow.analyze import NodeAnalysis
    from kflow.builder import AsyncWorkflowBuilder
    from kflow.codegen import ModuleBuilder


def template_fields(template: str) -> tuple[str, ...]:
    """The names a key template's `{fields}` read, in order."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise BadValue(f"cache_key_template {template!r}: {exc}",
                       "write fields as {name}, e.g. 'user_{user_id}'") from None
    fields: list[str] = []
    for _, field_name, _, _ in parsed:
        if field_name is None:
            continue
        root = field_name.split(".")[0].split("[")[0]
        identifier(root, f"cache_key_template {template!r}: field {field_name!r}")
        if root not in fields:
            fields.append(root)
    return tuple(fields)


@dataclass(frozen=True)
class CacheAsideParams(Params):
    """Shared by the three nodes of one cache-aside."""

    check: str = param(nonempty_text)
    fetch: str = param(nonempty_text)
    store: str = param(nonempty_text)
    cache: str = param(identifier, "cache")  # the Redis resource
    key_template: str = param(text, "{key}")
    key_fields: tuple[str, ...] = param(identifiers, ())
    ttl_seconds: float | None = param(limit, 3600.0)  # None (or inf): no expiry

    def validate(self) -> None:
        if template_fields(self.key_template) != self.key_fields:
            raise BadValue(f"key_fields {list(self.key_fields)} are not the fields of "
                           f"{self.key_template!r}")
        if len({self.check, self.fetch, self.store}) != 3:
            raise BadValue("the check, fetch and store nodes need three different ids")

    @property
    def ids(self) -> tuple[str, str, str]:
        return (self.check, self.fetch, self.store)


class _CacheKind(Kind):
    Params = CacheAsideParams
    role: str

    def check_node(self, node: Node) -> None:
        super().check_node(node)
        if getattr(node.params, self.role) != node.id:
            raise BadValue(f"node {node.id!r} is not the {self.role} node of its cache-aside")

    def group(self, node: Node) -> tuple[str, ...]:
        return node.params.ids

    def check_graph(self, node: Node, workflow: Workflow) -> list[Diagnostic]:
        ids = node.params.ids
        kinds = ("cache_check", "cache_fetch", "cache_store")
        nodes = [workflow._by_id.get(i) for i in ids]
        if any(n is None or n.kind != k or n.params != node.params
               for n, k in zip(nodes, kinds, strict=True)):
            return [Diagnostic("KF003", f"node {node.id!r} is part of a cache-aside whose "
                               "other nodes are missing", node.location,
                               "build all three with AsyncPatterns.cache_aside(...)")]
        edges = {(c.source, c.target) for c in workflow.connections}
        if (ids[0], ids[1]) not in edges or (ids[1], ids[2]) not in edges:
            return [Diagnostic("KF003", f"the cache-aside nodes of {node.id!r} do not run in "
                               "order (check, fetch, store)", node.location,
                               "build all three with AsyncPatterns.cache_aside(...)")]
        return []

    def resources(self, node: Node) -> tuple[str, ...]:
        return () if self.role == "fetch" else (node.params.cache,)


class CacheCheckKind(_CacheKind):
    name = "cache_check"
    label = "cache check"
    role = "check"
    has_code = False

    def reads(self, node: Node) -> tuple[str, ...]:
        return node.params.key_fields

    def emit(self, m: ModuleBuilder, a: NodeAnalysis) -> Emitted:
        group: CacheAsideParams = a.node.params
        params = m.node_params(a)
        local = m.scope.function(p.name for p in params)
        fields = Code("{" + ", ".join(f"{literal(f)}: {Ident(f)}" for f in group.key_fields)
                      + "}")
        piece = m.piece("patterns/cache_check.py.j2", {
            "node_id": a.node.id, "name": m.scope.define("node", a.node.id),
            "params": params, "cache": group.cache, "cache_param": Ident(group.cache),
            "fetch": group.fetch, "store": group.store, "template": group.key_template,
            "fields": fields, "key": local.local("key"), "hit": local.local("hit"),
            "value": local.local("value"),
        })
        return Emitted([piece], piece.p["name"])


class CacheFetchKind(_CacheKind):
    name = "cache_fetch"
    label = "cache fetch"
    role = "fetch"

    def emit(self, m: ModuleBuilder, a: NodeAnalysis) -> Emitted:
        group: CacheAsideParams = a.node.params
        params = m.node_params(a)
        lookup = m.scope.function(p.name for p in params).local("lookup")
        code = m.code_function(a, a.code, "code", params,
                               title=m.title(a, "fetch code, run on a cache miss"))
        piece = m.piece("patterns/cache_fetch.py.j2", {
            "name": m.scope.define("node", a.node.id), "params": [Param(lookup), *params],
            "lookup": lookup, "code_fn": code.name, "code_params": params,
        })
        return Emitted([code, piece], piece.p["name"], wires=((lookup, group.check, ()),))


class CacheStoreKind(_CacheKind):
    name = "cache_store"
    label = "cache store"
    role = "store"
    has_code = False

    def emit(self, m: ModuleBuilder, a: NodeAnalysis) -> Emitted:
        group: CacheAsideParams = a.node.params
        params = m.node_params(a)
        local = m.scope.function(p.name for p in params)
        lookup, data = local.local("lookup"), local.local("data")
        piece = m.piece("patterns/cache_store.py.j2", {
            "node_id": a.node.id, "name": m.scope.define("node", a.node.id),
            "params": [Param(lookup), Param(data), *params], "lookup": lookup, "data": data,
            "cache_param": Ident(group.cache), "fetch": group.fetch, "ttl": group.ttl_seconds,
        })
        wires = ((lookup, group.check, ()), (data, group.fetch, ()))
        return Emitted([piece], piece.p["name"], wires=wires)


@checked_call("KF016")
def cache_aside(
    builder: AsyncWorkflowBuilder, check_id: str, fetch_id: str, store_id: str,
    fetch_code: str, *, cache_resource: str = "cache",
    cache_key_template: str = "{key}", ttl_seconds: float | None = 3600,
) -> tuple[str, str, str]:
    """Three nodes: look the key up, fetch on a miss (only then does `fetch_code`
    run), store what was fetched with the TTL (None or inf: no expiry). The store
    node's output is the data."""
    site = caller_site()
    with located(site.location, "KF016"):
        text(cache_key_template, "cache_key_template")
        group = CacheAsideParams(check_id, fetch_id, store_id, cache_resource,
                                 cache_key_template, template_fields(cache_key_template),
                                 ttl_seconds)
    fetch = code_block(fetch_code, site, site.string_at(4, "fetch_code"))
    options = NodeOptions(required_resources=(cache_resource,))
    builder.add_node(builder.node(check_id, "cache_check", site, params=group, options=options))
    builder.add_node(builder.node(fetch_id, "cache_fetch", site, code=fetch, params=group))
    builder.add_node(builder.node(store_id, "cache_store", site, params=group, options=options))
    builder.add_dependency(check_id, fetch_id, site.location)
    builder.add_dependency(fetch_id, store_id, site.location)
    return check_id, fetch_id, store_id


KINDS: tuple[Any, ...] = (CacheCheckKind(), CacheFetchKind(), CacheStoreKind())
PATTERNS = {"cache_aside": cache_aside}
