"""Generate the module: analysed IR -> template context -> Jinja -> source.

Python here decides *what* to emit (which functions, which options, which
imports); the templates in `templates/` decide how it reads. Every identifier
the module defines comes from `Names`, so no node id can clash with another or
with a name the module needs; every value from the workflow reaches the source
through `repr`, so no id or string can inject code.
"""

from __future__ import annotations

import keyword
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kflow import graph
from kflow._version import RUNTIME_INTERFACE, __version__
from kflow.analyze import CodeAnalysis, NodeAnalysis, WorkflowAnalysis, input_targets
from kflow.errors import error
from kflow.ir import Node, SecretRef, thaw
from kflow.layout import Call, Source, literal
from kflow.pysource import RUNTIME_ALIAS as RT
from kflow.pysource import py, py_value
from kflow.templating import render
from kflow_runtime.run import DEFAULT_TIMEOUT

# Names the module itself defines or imports at top level; node functions never take them.
RESERVED = frozenset({"run", "WORKFLOW", "SOURCE_MAP", "RESOURCES", "REQUIRED_INPUTS",
                      "NODES", "run_many", "open_resources", RT})


class Names:
    """Hands out module-level identifiers: readable, unique, never a keyword."""

    def __init__(self, taken: Iterable[str] = ()) -> None:
        self._taken = set(taken) | RESERVED

    def allocate(self, prefix: str, hint: str) -> str:
        base = re.sub(r"\W+", "_", hint, flags=re.ASCII).strip("_").lower() or "node"
        candidate = f"{prefix}_{base}"
        if keyword.iskeyword(candidate) or not candidate.isidentifier():
            candidate = f"{prefix}_{len(self._taken)}"
        name, n = candidate, 2
        while name in self._taken:
            name, n = f"{candidate}_{n}", n + 1
        self._taken.add(name)
        return name


@dataclass
class Param:
    name: str
    default: str | None = None


@dataclass
class NodeFunction:
    """A function holding user code (or a resource operation), rendered by
    templates/node_function.py.j2; functions with `code` get a source-map entry."""

    node_id: str
    name: str
    kind: str
    location: str | None
    description: str | None
    params: list[Param]
    body: str
    code: CodeAnalysis | None = None
    title: str = ""
    is_async: bool = True
    decorator: str | None = None


@dataclass
class PatternPiece:
    """Module-level code a pattern adds around its code functions (a wrapper, its
    shared state), rendered by templates/patterns/<kind>.py.j2 with `p`."""

    template: str
    p: dict[str, Any]


@dataclass
class Emitted:
    """What one node contributes: pieces in order, the function `ctx.call` runs,
    wires the pattern adds, and options it sets on the call."""

    pieces: list[NodeFunction | PatternPiece]
    entry: str
    wires: tuple[tuple[str, str, tuple[str, ...] | None], ...] = ()
    call_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class NodeCall:
    node_id: str
    layout: Call  # `await ctx.call(...)`, laid out by kflow.layout


@dataclass
class ChainContext:
    name: str | None
    waits_for: tuple[str, ...]
    calls: list[NodeCall]

    @property
    def wait(self) -> Call:
        return Call("await ctx.wait", self.waits_for)


@dataclass
class ModuleContext:
    workflow: str
    source_file: str
    description: str | None
    imports: list[str]
    pieces: list[NodeFunction | PatternPiece]
    chains: list[ChainContext]
    required_inputs: dict[str, tuple[str, ...]]
    node_ids: tuple[str, ...]
    resources: list[tuple[str, str]] = field(default_factory=list)  # (name, constructor source)
    resource_functions: list[NodeFunction] = field(default_factory=list)
    uses_resources: bool = False
    interface: int = RUNTIME_INTERFACE
    kflow_version: str = __version__

    @property
    def single_chain(self) -> bool:
        return len(self.chains) == 1


def params_for(analysis: NodeAnalysis, code: CodeAnalysis, *, drop: tuple[str, ...] = ()
               ) -> list[Param]:
    """The node's parameters that this piece of its code reads."""
    reads = set(code.free_names) | {o.name for o in code.optional}
    return [p for p in _params(analysis) if p.name in reads and p.name not in drop]


def _params(analysis: NodeAnalysis) -> list[Param]:
    params = [Param(name) for name in analysis.connected if name not in _optional_names(analysis)]
    params += [Param(name) for name in analysis.workflow_inputs]
    params += [Param(o.name, o.default if o.in_signature else f"{RT}.MISSING")
               for o in analysis.optional]
    params += [Param(name) for name in analysis.resources]
    return params


def _optional_names(analysis: NodeAnalysis) -> set[str]:
    return {o.name for o in analysis.optional}


def _location(node: Node, source_file: str) -> str | None:
    if node.location is None:
        return None
    return f"{source_file}:{node.location.line}"


class ModuleBuilder:
    def __init__(self, analysis: WorkflowAnalysis, source_file: str) -> None:
        self.analysis = analysis
        self.workflow = analysis.workflow
        self.source_file = source_file
        self.names = Names(analysis.imports)
        self.imports: set[str] = set(analysis.imports)
        self.emitted: dict[str, Emitted] = {}
        self.handlers: dict[str, NodeFunction] = {}
        self.resource_functions: list[NodeFunction] = []
        self.resource_kinds = {r.name: r.kind for r in self.workflow.resources}
        self.used_resources = {
            dict(a.resource_aliases).get(n, n) for a in analysis.nodes.values() for n in a.resources
        }
        self.predecessors = graph.predecessors(self.workflow)

    def build(self) -> ModuleContext:
        for node in self.workflow.nodes:
            self.emitted[node.id] = self.emit(self.analysis.nodes[node.id])
        chains = [
            ChainContext(
                name=None,
                waits_for=chain.waits_for,
                calls=[self.node_call(node_id) for node_id in chain.nodes],
            )
            for chain in graph.chains(self.workflow)
        ]
        if len(chains) > 1:
            self.imports.add("asyncio")
            for chain in chains:
                chain.name = self.names.allocate("chain", chain.calls[0].node_id)
        required: dict[str, list[str]] = {}
        for node in self.workflow.nodes:
            node_analysis = self.analysis.nodes[node.id]
            for name in (*node_analysis.workflow_inputs, *node_analysis.handler_inputs):
                required.setdefault(name, []).append(node.id)
        pieces = [
            piece
            for node_id, emitted in self.emitted.items()
            for piece in (*emitted.pieces, self.handlers.get(node_id))
            if piece is not None
        ]
        resources = self.resource_declarations()
        return ModuleContext(
            workflow=self.workflow.name,
            source_file=self.source_file,
            description=self.workflow.description,
            imports=sorted(self.imports),
            pieces=pieces,
            chains=chains,
            required_inputs={k: tuple(v) for k, v in required.items()},
            node_ids=tuple(n.id for n in self.workflow.nodes),
            resources=resources,
            resource_functions=self.resource_functions,
            uses_resources=bool(self.used_resources),
        )

    def resource_declarations(self) -> list[tuple[str, str]]:
        """The specs of the resources some node uses; the module opens nothing else."""
        used = self.used_resources
        declarations = []
        for resource in self.workflow.resources:
            if resource.name not in used or resource.kind not in RESOURCE_SPECS:
                continue
            spec = RESOURCE_SPECS[resource.kind]
            settings = dict(resource.settings)
            try:
                source = py_settings(settings)
            except TypeError:
                bad = [k for k, v in settings.items() if not _writable(v)]
                raise error(
                    "KF019", f"resource {resource.name!r}: setting {bad[0]!r} is a "
                    f"{type(settings[bad[0]]).__name__}, which cannot be written into a module",
                    resource.location,
                    "use plain values (str, number, bool, list, dict); for anything else build "
                    "the client yourself with require_resource(...) or inject it with "
                    "run(resources=...)",
                ) from None
            if resource.kind == "custom":
                source = self.custom_resource(resource.name)
            declarations.append((resource.name, f"{RT}.{spec}({py(resource.name)}, {source})"))
        return declarations

    def custom_resource(self, name: str) -> str:
        """Settings of a custom resource: each inlined callable comes from a function
        (before RESOURCES in the module) that defines it and hands it back."""
        roles = []
        for role, code in self.analysis.resource_codes[name]:
            fn = NodeFunction(
                name, self.names.allocate(role, name), "resource", _where(code), None, [],
                code.function_body, code, title=f"Resource {py(name)}, its {role}",
                is_async=False,
            )
            self.resource_functions.append(fn)
            roles.append(f"{py(role)}: {fn.name}()")
        return "{" + ", ".join(roles) + "}"

    def emit(self, analysis: NodeAnalysis) -> Emitted:
        node = analysis.node
        if analysis.handler is not None:
            self.handlers[node.id] = self.handler_function(analysis)
        if node.kind in ("code", "retry_with_backoff", "fallback_primary"):
            fn = self.code_function(analysis, analysis.code, "node", _params(analysis))
            options = {"on_error": self.recover()} if node.kind == "fallback_primary" else {}
            return Emitted([fn], fn.name, call_options=options)
        if node.kind == "resource":
            resource = node.params["resource"]
            body = render(
                "resource_node.py.j2",
                resource=resource,
                kind=self.resource_kinds.get(resource, "injected"),
                operation=node.params["operation"],
                params=py_value(node.params["params"]),
            )
            fn = NodeFunction(node.id, self.names.allocate("node", node.id), node.kind,
                              _location(node, self.source_file), node.options.description,
                              [Param(resource)], body, title=f"Node {py(node.id)}")
            return Emitted([fn], fn.name)
        from kflow.emit_patterns import EMITTERS

        return EMITTERS[node.kind](self, analysis)

    def code_function(self, analysis: NodeAnalysis, code: CodeAnalysis | None, prefix: str,
                      params: list[Param], *, title: str | None = None, hint: str | None = None,
                      is_async: bool = True, decorator: str | None = None) -> NodeFunction:
        """A function whose body is user code."""
        node = analysis.node
        assert code is not None
        return NodeFunction(
            node.id, self.names.allocate(prefix, hint or node.id), node.kind,
            _location(node, self.source_file), node.options.description, params,
            code.function_body, code, title=title or f"Node {py(node.id)}",
            is_async=is_async, decorator=decorator,
        )

    def recover(self) -> Call:
        return Call(f"{RT}.Recover")

    def handler_function(self, analysis: NodeAnalysis) -> NodeFunction:
        """A custom error handler: its code runs with `error` and the node's inputs."""
        assert analysis.handler is not None
        readable = {p.name for p in _params(analysis)} | set(analysis.handler_inputs)
        inputs = [n for n in analysis.handler.free_names if n in readable]
        return NodeFunction(
            analysis.node.id, self.names.allocate("on_error", analysis.node.id),
            "error_handler", _location(analysis.node, self.source_file), None,
            [Param("error"), *(Param(n) for n in inputs)],
            analysis.handler.function_body, analysis.handler,
            title=f"Node {py(analysis.node.id)}, its error handler",
        )

    def node_call(self, node_id: str) -> NodeCall:
        analysis = self.analysis.nodes[node_id]
        node = analysis.node
        emitted = self.emitted[node_id]
        group = set(input_targets(self.workflow, node_id))
        wires = tuple(
            (c.input, c.source, c.path)
            for c in self.workflow.connections
            if c.target in group and c.input in analysis.connected
        ) + emitted.wires
        wired_sources = {source for _, source, _ in wires}
        after = tuple(p for p in self.predecessors[node_id] if p not in wired_sources)
        inputs = (*analysis.workflow_inputs,
                  *(o.name for o in analysis.optional if o.name not in analysis.connected))
        options = node.options
        kwargs: list[tuple[str, Any]] = [
            (key, value)
            for key, value in (
                ("wires", wires),
                ("after", after),
                ("inputs", inputs),
                ("resources", _resource_args(analysis)),
            )
            if value
        ]
        if options.timeout != DEFAULT_TIMEOUT:
            kwargs.append(("timeout", options.timeout))
        if options.retry is not None:
            kwargs.append(("retry", self.retry_policy(node)))
        if options.error_handler is not None:
            kwargs.append(("on_error", self.handler(analysis)))
        # A pattern's own call options replace the node's (e.g. a breaker times calls itself).
        kwargs = [(k, v) for k, v in kwargs if k not in emitted.call_options]
        kwargs.extend(emitted.call_options.items())
        call = Call("await ctx.call", (node_id, Source(emitted.entry)), tuple(kwargs))
        return NodeCall(node_id, call)

    def retry_policy(self, node: Node) -> Call:
        spec = node.options.retry
        assert spec is not None
        for name in spec.retry_exceptions:
            module = self.analysis.retry_exceptions[name]
            if module:
                self.imports.add(module)
        return Call(f"{RT}.RetryPolicy", kwargs=(
            ("max_attempts", spec.max_attempts),
            ("initial_delay", spec.initial_delay),
            ("backoff_factor", spec.backoff_factor),
            ("max_delay", spec.max_delay),
            ("retry_on", tuple(Source(name) for name in spec.retry_exceptions)),
        ))

    def handler(self, analysis: NodeAnalysis) -> Call:
        spec = analysis.node.options.error_handler
        assert spec is not None
        if spec.kind == "fallback":
            value = thaw(spec.fallback_value)
            try:
                literal(value)
                py_value(spec.fallback_value)
            except TypeError as exc:
                raise error("KF015", f"node {analysis.node.id!r}: fallback value: {exc}",
                            analysis.node.location, "use JSON-like values") from None
            return Call(f"{RT}.Fallback", (value,))
        if spec.kind == "ignore":
            return Call(f"{RT}.Ignore")
        if spec.kind == "log":
            return Call(f"{RT}.LogAndFail")
        handler = self.handlers[analysis.node.id]
        inputs = tuple(p.name for p in handler.params if p.name != "error")
        return Call(f"{RT}.Custom", (Source(handler.name),), (("inputs", inputs),))


def _resource_args(analysis: NodeAnalysis) -> tuple[Any, ...]:
    aliases = dict(analysis.resource_aliases)
    return tuple((p, aliases[p]) if p in aliases else p for p in analysis.resources)


RESOURCE_SPECS = {"database": "Database", "http": "HttpClient", "cache": "Cache",
                  "custom": "CustomResource"}


def _where(code: CodeAnalysis) -> str | None:
    """`file:line` where inlined code was defined."""
    if not code.statement_lines or code.file is None:
        return None
    return f"{os.path.basename(code.file)}:{code.statement_lines[0]}"


def _writable(value: Any) -> bool:
    try:
        _setting_source(value)
    except TypeError:
        return False
    return True


def py_settings(settings: Mapping[str, Any]) -> str:
    """A resource's settings as a dict literal; secrets become `Secret("KFLOW_...")`."""
    items = ", ".join(f"{py(k)}: {_setting_source(v)}" for k, v in settings.items())
    return "{" + items + "}"


def _setting_source(value: Any) -> str:
    if isinstance(value, SecretRef):
        return py(value)
    if isinstance(value, Mapping):
        return py_settings(value)
    return py_value(value)


