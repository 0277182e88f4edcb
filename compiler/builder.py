"""`AsyncWorkflowBuilder`: the guide's authoring API, writing the IR.

Every `add_*` call records where the user wrote it, so that every later error
(here, in the analyser or at run time) can point at the user's own line.
Mistakes that can be seen at the call (a duplicate id, a bad option, a misspelt
keyword) fail at the call; mistakes that need the whole graph (unknown nodes,
cycles) fail in `build()`, pointing at the call that introduced them.

What each node kind means lives in its module under `kflow.kinds`; the builder's
node methods are those modules' authoring functions.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kflow import graph
from kflow.errors import error
from kflow.ir import (
    ORDER_ONLY,
    CodeBlock,
    Connection,
    Node,
    NodeOptions,
    Resource,
    SourceLocation,
    Workflow,
)
from kflow.kinds import code as _code
from kflow.kinds import parallel_map as _parallel_map
from kflow.kinds import resource as _resource
from kflow.kinds._authoring import checked_call, located
from kflow.locate import CallSite, caller_site
from kflow.secrets import split_secrets
from kflow.values import BadValue, Params, identifier, nonempty_text, optional_text

__all__ = ["ORDER_ONLY", "AsyncWorkflowBuilder", "RuntimeExtras", "parse_path",
           "runtime_extras"]


@dataclass
class RuntimeExtras:
    """What an in-process run may use but the IR must never hold."""

    secrets: dict[str, str] = field(default_factory=dict)
    registry: Any = None
    # Diagnostics about how the workflow file was run (kflow.envprov's KF112).
    notes: list[Any] = field(default_factory=list)


# Keyed by the identity of a built Workflow (equal workflows may carry different
# secrets), and dropped when that workflow is garbage-collected.
_EXTRAS: dict[int, RuntimeExtras] = {}


def attach_extras(workflow: Workflow, extras: RuntimeExtras) -> None:
    key = id(workflow)
    _EXTRAS[key] = extras
    weakref.finalize(workflow, _EXTRAS.pop, key, None)


def runtime_extras(workflow: Workflow) -> RuntimeExtras:
    return _EXTRAS.get(id(workflow)) or RuntimeExtras()


def parse_path(from_output: str | None) -> tuple[str, ...]:
    """`None` / "result" -> whole output; "result.a.b" or "a.b" -> keys a, b."""
    if from_output is None or from_output == "result":
        return ()
    parts = from_output.split(".")
    if parts[0] == "result":
        parts = parts[1:]
    return tuple(parts)


class AsyncWorkflowBuilder:
    """Build an async workflow: nodes of async code, connections, resources."""

    def __init__(
        self,
        name: str | None = None,
        resource_registry: Any = None,
        description: str | None = None,
    ) -> None:
        site = caller_site()
        with located(site.location, "KF011"):
            self.name = nonempty_text(name, "workflow name") if name else "workflow"
            self.description = optional_text(description, "description")
        self.resource_registry = resource_registry
        self._site = site
        self._nodes: dict[str, Node] = {}
        self._connections: list[Connection] = []
        self._resources: dict[str, Resource] = {}
        self._extras = RuntimeExtras(registry=resource_registry)

    # -- nodes (each kind's own authoring function) --------------------------------

    add_async_code = _code.add_async_code
    add_resource_node = _resource.add_resource_node
    add_parallel_map = _parallel_map.add_parallel_map

    def node(self, node_id: Any, kind: str, site: CallSite, *, code: CodeBlock | None = None,
             options: NodeOptions | None = None, params: Params | None = None,
             codes: tuple[tuple[str, CodeBlock], ...] = ()) -> Node:
        """An IR node made at the user's call `site` (kinds call this)."""
        with located(site.location, "KF012"):
            nonempty_text(node_id, "node id")
        with located(site.location, "KF016"):
            return Node(node_id, kind, code, options or NodeOptions(), params,
                        location=site.location, codes=codes)

    def add_node(self, node: Node | str, node_id: Any = None, config: Any = None,
                 **options: Any) -> str:
        """Add a fully formed IR node (patterns use this); returns its id.

        Kailash's spelling, `add_node("AsyncPythonCodeNode" | "PythonCodeNode", node_id,
        {"code": ...})`, adds a code node (a PythonCodeNode's sync code runs in a thread).
        """
        if not isinstance(node, Node):
            from kflow.kinds.python_code import add_kailash_node

            return add_kailash_node(self, node, node_id, config, **options)
        if node.id in self._nodes:
            first = self._nodes[node.id].location
            raise error(
                "KF004", f"duplicate node id {node.id!r}", node.location,
                f"it was first added at {first}; give each node its own id" if first
                else "give each node its own id",
            )
        self._nodes[node.id] = node
        return node.id

    def add_dependency(self, source: str, target: str, location: SourceLocation | None) -> None:
        """Order `target` after `source` without passing data (patterns' inner edges)."""
        self._connections.append(Connection(source, (), target, ORDER_ONLY, location))

    @checked_call("KF013")
    def add_connection(
        self, from_node: str, from_output: str | None, to_node: str, to_input: str
    ) -> AsyncWorkflowBuilder:
        """Feed `from_node`'s output (or a dotted path into it) to `to_node` as `to_input`."""
        site = caller_site()
        try:
            identifier(to_input, "connection input")
        except BadValue:
            raise error(
                "KF013", f"connection input {to_input!r} is not a usable Python name",
                site.location, "name the input as the target's code uses it, e.g. 'data'",
            ) from None
        if from_output is not None and not isinstance(from_output, str):
            raise error("KF013", f"connection path must be a string, not {from_output!r}",
                        site.location, "write keys separated by dots: 'result.a.b'")
        path = parse_path(from_output)
        if any(not part for part in path):
            raise error("KF013", f"connection path {from_output!r} has an empty key",
                        site.location, "write keys separated by single dots: 'result.a.b'")
        with located(site.location, "KF013"):
            connection = Connection(from_node, path, to_node, to_input, site.location)
        self._connections.append(connection)
        return self

    # -- resources -------------------------------------------------------------

    def with_database(self, name: str = "db", **settings: Any) -> AsyncWorkflowBuilder:
        """A PostgreSQL pool (asyncpg) that node code uses by `name`."""
        return self._add_resource(name, "database", settings)

    def with_http_client(self, name: str = "http", **settings: Any) -> AsyncWorkflowBuilder:
        """An HTTP client (aiohttp) with `base_url`, `headers`, `timeout`, `connection_limit`."""
        return self._add_resource(name, "http", settings)

    def with_cache(self, name: str = "cache", **settings: Any) -> AsyncWorkflowBuilder:
        """A Redis client (redis.asyncio)."""
        return self._add_resource(name, "cache", settings)

    @checked_call("KF019")
    def require_resource(
        self,
        name: str,
        factory: Callable[..., Any],
        health_check: Callable[..., Any] | None = None,
        cleanup_handler: Callable[..., Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> AsyncWorkflowBuilder:
        """A custom resource made by `factory` (sync or async), checked by `health_check`
        and closed by `cleanup_handler`; kflowc inlines all three into the module.

        `settings` are passed to `factory` as keyword arguments when the resource opens,
        so a credential can come from the environment (`KFLOW_<NAME>_<SETTING>`) instead
        of a literal in the factory's source.
        """
        from kflow.inline import inline_callable

        site = caller_site()
        self._check_resource_name(name, site)
        roles = (("factory", factory), ("health_check", health_check),
                 ("cleanup", cleanup_handler))
        codes = tuple(
            (role, inline_callable(fn, role, site.location))
            for role, fn in roles
            if fn is not None
        )
        if settings is not None and not isinstance(settings, Mapping):
            raise error("KF019", "require_resource settings must be a dict", site.location,
                        "settings={'api_key': ...} is passed to the factory as api_key=...")
        reserved = sorted(set(settings or {}) & {"factory", "health_check", "cleanup"})
        if reserved:
            raise error("KF019", f"setting {reserved[0]!r} would replace the resource's own "
                        f"{reserved[0]}", site.location, "name the setting differently")
        self._resources[name] = self._resource(name, "custom", dict(settings or {}), site,
                                               codes)
        return self

    def _check_resource_name(self, name: Any, site: CallSite | None) -> None:
        try:
            identifier(name, "resource name")
        except BadValue:
            raise error("KF014", f"resource name {name!r} is not a usable Python name",
                        site.location if site else None,
                        "node code uses a resource by its name, e.g. 'db'") from None

    def _resource(self, name: str, kind: str, settings: dict[str, Any], site: CallSite,
                  codes: tuple[tuple[str, CodeBlock], ...] = ()) -> Resource:
        from kflow.envprov import env_refs

        try:
            public, secret_values = split_secrets(name, settings)
        except ValueError as exc:
            raise error("KF019", f"resource {name!r}: {exc}", site.location,
                        "give the two credentials different names") from None
        public = env_refs(public)  # os.getenv values stay read from the environment
        with located(site.location, "KF019"):
            resource = Resource(name, kind, public, site.location, codes)
        self._extras.secrets.update(secret_values)
        return resource

    def _add_resource(self, name: str, kind: str, settings: dict[str, Any]) -> AsyncWorkflowBuilder:
        site = caller_site()
        self._check_resource_name(name, site)
        self._resources[name] = self._resource(name, kind, settings, site)
        return self

    # -- build -----------------------------------------------------------------

    def build(self) -> Workflow:
        """Validate the graph and return the immutable Workflow IR."""
        nodes = tuple(self._nodes.values())
        resources = dict(self._resources)
        for name in _registry_names(self.resource_registry):
            if name in resources:
                continue
            try:
                identifier(name, "resource name")
            except BadValue:
                raise error(
                    "KF014", f"resource {name!r} of the ResourceRegistry is not a usable "
                    "Python name", self._site.location,
                    "node code uses a resource by its name: register it as e.g. 'main_db'",
                ) from None
            resources[name] = Resource(name, "injected")
        with located(caller_site().location, "KF011"):
            workflow = Workflow(
                name=self.name,
                nodes=nodes,
                connections=tuple(self._connections),
                resources=tuple(resources.values()),
                description=self.description,
                source_file=_first_file(nodes),
            )
        graph.validate(workflow)
        attach_extras(workflow, self._extras)
        return workflow


def _registry_names(registry: Any) -> list[str]:
    if registry is None:
        return []
    names = getattr(registry, "names", None)
    return list(names()) if callable(names) else []


def _first_file(nodes: tuple[Node, ...]) -> str | None:
    for node in nodes:
        if node.location is not None:
            return node.location.file
    return None
