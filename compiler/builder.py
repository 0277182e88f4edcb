"""`AsyncWorkflowBuilder`: the guide's authoring API, writing the IR.

Every `add_*` call records where the user wrote it, so that every later error
(here, in the analyser or at run time) can point at the user's own line.
Mistakes that can be seen at the call (a duplicate id, a bad option) fail at
the call; mistakes that need the whole graph (unknown nodes, cycles) fail in
`build()`, pointing at the call that introduced them.
"""

from __future__ import annotations

import keyword
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kflow import graph
from kflow.errors import error
from kflow.ir import (
    CodeBlock,
    Connection,
    Node,
    NodeOptions,
    Resource,
    SourceLocation,
    Workflow,
    freeze,
)
from kflow.locate import CallSite, caller_site
from kflow.policies import AsyncRetryPolicy, ErrorHandler
from kflow.secrets import split_secrets


@dataclass
class RuntimeExtras:
    """What an in-process run may use but the IR must never hold."""

    secrets: dict[str, str] = field(default_factory=dict)
    registry: Any = None


# Keyed by the identity of a built Workflow (equal workflows may carry different
# secrets), and dropped when that workflow is garbage-collected.
_EXTRAS: dict[int, RuntimeExtras] = {}


def attach_extras(workflow: Workflow, extras: RuntimeExtras) -> None:
    key = id(workflow)
    _EXTRAS[key] = extras
    weakref.finalize(workflow, _EXTRAS.pop, key, None)


def runtime_extras(workflow: Workflow) -> RuntimeExtras:
    return _EXTRAS.get(id(workflow)) or RuntimeExtras()


# The input name of an edge that only orders two nodes; no code can read it.
ORDER_ONLY = "_kflow_after"


def parse_path(from_output: str | None) -> tuple[str, ...]:
    """`None` / "result" -> whole output; "result.a.b" or "a.b" -> keys a, b."""
    if from_output is None or from_output == "result":
        return ()
    parts = from_output.split(".")
    if parts[0] == "result":
        parts = parts[1:]
    return tuple(parts)


def code_block(text: str, site: CallSite, literal: SourceLocation | None) -> CodeBlock:
    if not isinstance(text, str):
        raise error(
            "KF010",
            f"node code must be a string of Python code, not {type(text).__name__}",
            site.location,
            "pass the code as a (triple-quoted) string",
        )
    if literal is not None:
        return CodeBlock(text, literal, exact=True)
    return CodeBlock(text, site.location, exact=False)


class AsyncWorkflowBuilder:
    """Build an async workflow: nodes of async code, connections, resources."""

    def __init__(
        self,
        name: str | None = None,
        resource_registry: Any = None,
        description: str | None = None,
    ) -> None:
        self.name = name or "workflow"
        self.description = description
        self.resource_registry = resource_registry
        self._nodes: dict[str, Node] = {}
        self._connections: list[Connection] = []
        self._resources: dict[str, Resource] = {}
        self._extras = RuntimeExtras(registry=resource_registry)

    # -- nodes -----------------------------------------------------------------

    def add_async_code(
        self,
        node_id: str,
        code: str,
        *,
        timeout: float | None = 30,
        retry_policy: AsyncRetryPolicy | None = None,
        error_handler: ErrorHandler | None = None,
        required_resources: Sequence[str] | None = None,
        description: str | None = None,
    ) -> str:
        """Add a node running `code`; its output is the value of `result`."""
        site = caller_site()
        block = code_block(code, site, site.string_at(1, "code"))
        options = self.node_options(
            site,
            timeout=timeout,
            retry_policy=retry_policy,
            error_handler=error_handler,
            required_resources=required_resources,
            description=description,
        )
        return self.add_node(Node(node_id, "code", block, options, location=site.location))

    def add_resource_node(
        self,
        node_id: str,
        resource_name: str,
        operation: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = 30,
        retry_policy: AsyncRetryPolicy | None = None,
        error_handler: ErrorHandler | None = None,
        description: str | None = None,
    ) -> str:
        """Add a node that calls `operation` on a resource (e.g. a database `fetch`)."""
        site = caller_site()
        options = self.node_options(
            site,
            timeout=timeout,
            retry_policy=retry_policy,
            error_handler=error_handler,
            required_resources=[resource_name],
            description=description,
        )
        node_params = freeze(
            {"resource": resource_name, "operation": operation, "params": dict(params or {})}
        )
        return self.add_node(
            Node(node_id, "resource", None, options, node_params, location=site.location)
        )

    def add_parallel_map(
        self,
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
        `{output_field: [...], "errors": [...], "statistics": {...}}`."""
        from kflow.patterns import parallel_map_node

        site = caller_site()
        return self.add_node(parallel_map_node(
            node_id, map_function, site=site, input_field=input_field,
            output_field=output_field, max_workers=max_workers, batch_size=batch_size,
            timeout_per_item=timeout_per_item, continue_on_error=continue_on_error,
            executor=executor, description=description,
        ))

    def add_dependency(self, source: str, target: str, location: SourceLocation | None) -> None:
        """Order `target` after `source` without passing data (patterns' inner edges)."""
        self._connections.append(Connection(source, (), target, ORDER_ONLY, location))

    def node_options(
        self,
        site: CallSite,
        *,
        timeout: float | None,
        retry_policy: AsyncRetryPolicy | None,
        error_handler: ErrorHandler | None,
        required_resources: Sequence[str] | None,
        description: str | None,
    ) -> NodeOptions:
        if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
            raise error(
                "KF011", f"timeout must be a positive number of seconds, not {timeout!r}",
                site.location, "use e.g. timeout=30, or timeout=None for no limit",
            )
        if retry_policy is not None and not isinstance(retry_policy, AsyncRetryPolicy):
            raise error(
                "KF011", "retry_policy must be an AsyncRetryPolicy", site.location,
                "retry_policy=AsyncRetryPolicy(max_attempts=3, initial_delay=1.0)",
            )
        if error_handler is not None and not isinstance(error_handler, ErrorHandler):
            raise error(
                "KF011", "error_handler must be an ErrorHandler", site.location,
                "error_handler=ErrorHandler(handler_type='fallback', fallback_value=...)",
            )
        handler_code = None
        if error_handler is not None and error_handler.handler_type == "custom":
            handler_code = code_block(error_handler.code or "", site, None)
        return NodeOptions(
            timeout=float(timeout) if timeout is not None else None,
            retry=retry_policy.to_spec() if retry_policy else None,
            error_handler=error_handler.to_spec(handler_code) if error_handler else None,
            required_resources=tuple(required_resources or ()),
            description=description,
        )

    def add_node(self, node: Node) -> str:
        """Add a fully formed IR node (patterns use this); returns its id."""
        if not isinstance(node.id, str) or not node.id:
            raise error("KF012", f"node id must be a non-empty string, not {node.id!r}",
                        node.location, "name the node, e.g. add_async_code('fetch', ...)")
        if node.id in self._nodes:
            first = self._nodes[node.id].location
            raise error(
                "KF004", f"duplicate node id {node.id!r}", node.location,
                f"it was first added at {first}; give each node its own id" if first
                else "give each node its own id",
            )
        self._nodes[node.id] = node
        return node.id

    def add_connection(
        self, from_node: str, from_output: str | None, to_node: str, to_input: str
    ) -> AsyncWorkflowBuilder:
        """Feed `from_node`'s output (or a dotted path into it) to `to_node` as `to_input`."""
        site = caller_site()
        if not isinstance(to_input, str) or not to_input.isidentifier() or keyword.iskeyword(
            to_input
        ):
            raise error(
                "KF013", f"connection input {to_input!r} is not a usable Python name",
                site.location, "name the input as the target's code uses it, e.g. 'data'",
            )
        path = parse_path(from_output)
        if any(not part for part in path):
            raise error("KF013", f"connection path {from_output!r} has an empty key",
                        site.location, "write keys separated by single dots: 'result.a.b'")
        self._connections.append(Connection(from_node, path, to_node, to_input, site.location))
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

    def require_resource(
        self,
        name: str,
        factory: Callable[..., Any],
        health_check: Callable[..., Any] | None = None,
        cleanup_handler: Callable[..., Any] | None = None,
    ) -> AsyncWorkflowBuilder:
        """A custom resource made by `factory` (sync or async), checked by `health_check`
        and closed by `cleanup_handler`; kflowc inlines all three into the module."""
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
        self._resources[name] = Resource(name, "custom", location=site.location, codes=codes)
        return self

    def _check_resource_name(self, name: str, site: CallSite) -> None:
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise error("KF014", f"resource name {name!r} is not a usable Python name",
                        site.location, "node code uses a resource by its name, e.g. 'db'")

    def _add_resource(self, name: str, kind: str, settings: dict[str, Any]) -> AsyncWorkflowBuilder:
        site = caller_site()
        self._check_resource_name(name, site)
        public, secret_values = split_secrets(name, settings)
        self._extras.secrets.update(secret_values)
        self._resources[name] = Resource(name, kind, freeze(public), site.location)
        return self

    # -- build -----------------------------------------------------------------

    def build(self) -> Workflow:
        """Validate the graph and return the immutable Workflow IR."""
        nodes = tuple(self._nodes.values())
        resources = dict(self._resources)
        for name in _registry_names(self.resource_registry):
            resources.setdefault(name, Resource(name, "injected"))
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
