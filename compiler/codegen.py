"""Generate the module: analysed IR -> template context -> Jinja -> source.

Python here decides *what* to emit (which functions, which options, which imports);
each node kind's `emit` decides what its node contributes, and the templates in
`templates/` decide how it reads. Every identifier the module defines comes from one
scope (`kflow.scope`), so no name from the workflow can shadow a generated one or the
reverse; every value reaches the source through `kflow.pysource.literal`, so no id or
string can inject code.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kflow import graph
from kflow._version import RUNTIME_INTERFACE, __version__
from kflow.analyze import NodeAnalysis, WorkflowAnalysis, input_targets
from kflow.code_analysis import CodeAnalysis
from kflow.errors import error
from kflow.fingerprint import node_fingerprints
from kflow.ir import EnvRef, Node, SecretRef
from kflow.layout import Call, Source
from kflow.layout import literal as flat
from kflow.pieces import Emitted, NodeFunction, Param, PatternPiece
from kflow.pysource import Code, Ident, literal
from kflow.scope import ModuleScope
from kflow.values import thaw
from kflow_runtime.run import DEFAULT_TIMEOUT


@dataclass
class NodeCall:
    node_id: str
    layout: Call  # `await ctx.call(...)`, laid out by kflow.layout


@dataclass
class ChainContext:
    name: Ident | None  # None: called inline from the wiring
    waits_for: tuple[str, ...]
    calls: list[NodeCall]

    @property
    def wait(self) -> Call:
        return Call("await ctx.wait", self.waits_for)


@dataclass
class StageContext:
    """One step of the wiring (kflow.graph.Stage): one inline chain, or chains at once."""

    chains: list[ChainContext]

    @property
    def inline(self) -> bool:
        return len(self.chains) == 1


@dataclass
class ModuleContext:
    workflow: str
    source_file: str
    description: str | None
    rt: Ident  # the module's name for kflow_runtime
    imports: list[Code]  # import lines, sorted
    pieces: list[NodeFunction | PatternPiece]
    stages: list[StageContext]
    required_inputs: dict[str, tuple[str, ...]]
    node_ids: tuple[str, ...]
    # node -> (its fingerprint, the nodes it reads): what a durable run checks on resume.
    durable: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    # node id -> (kind, "workflow.py:LINE" or None): what observers (OpenTelemetry) report.
    node_info: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    resources: list[tuple[str, Code]] = field(default_factory=list)  # (name, spec source)
    resource_functions: list[NodeFunction] = field(default_factory=list)
    uses_resources: bool = False
    # The wiring function (`run_nodes(ctx)`) and the Program built from it at the end.
    run_nodes: Ident = Ident("run_nodes")
    program: Call | None = None
    # Required inputs that are functions or clients: the module says how to pass them.
    not_json: tuple[str, ...] = ()
    interface: int = RUNTIME_INTERFACE
    kflow_version: str = __version__
    # (name, module): modules node code reads unimported, imported when first used.
    lazy_imports: list[tuple[Ident, str]] = field(default_factory=list)

    @property
    def chains(self) -> list[ChainContext]:
        """The chains that run as tasks, each its own function."""
        return [chain for stage in self.stages if not stage.inline for chain in stage.chains]


RESOURCE_SPECS = {"database": "Database", "http": "HttpClient", "cache": "Cache",
                  "custom": "CustomResource"}


def user_names(analysis: WorkflowAnalysis) -> set[str]:
    """Every name that is the user's: parameters of node functions, resources, connected
    inputs, and every name their code binds or reads."""
    names: set[str] = {r.name for r in analysis.workflow.resources}
    names |= {c.input for c in analysis.workflow.connections}
    for a in analysis.nodes.values():
        names |= set(a.binding.reads) | set(a.resources) | set(a.kind.reads(a.node))
        names |= set(a.kind.code_role(a.node).provided)
        if a.handler_binding is not None:
            names |= set(a.handler_binding.reads) | {"error"}
        for code in a.codes:
            names |= code.identifiers
    for codes in analysis.resource_codes.values():
        for _, code in codes:
            names |= code.identifiers
    return names


class ModuleBuilder:
    def __init__(self, analysis: WorkflowAnalysis, source_file: str) -> None:
        self.analysis = analysis
        self.workflow = analysis.workflow
        self.source_file = source_file
        self.rt = analysis.runtime
        # Module imports user code relies on (auto-imports, retry exceptions' modules).
        self.imports: set[str] = set(analysis.imports)
        for name in analysis.retry_exceptions.values():
            if name:
                self.imports.add(name)
        self.scope = ModuleScope(self.rt, user_names(analysis)
                                 | {name.split(".")[0] for name in self.imports})
        self.emitted: dict[str, Emitted] = {}
        self.handlers: dict[str, NodeFunction] = {}
        self.resource_functions: list[NodeFunction] = []
        self.resource_kinds = {r.name: r.kind for r in self.workflow.resources}
        self.used_resources = {
            dict(a.resource_aliases).get(n, n) for a in analysis.nodes.values() for n in a.resources
        }
        self.predecessors = graph.predecessors(self.workflow)
        # Connections by the node they feed (each node's wires, without a scan per node).
        self.into: dict[str, list] = {}
        self.order: dict[int, int] = {}  # connection -> its place in the workflow
        for index, conn in enumerate(self.workflow.connections):
            self.into.setdefault(conn.target, []).append(conn)
            self.order[id(conn)] = index

    # -- what kinds use ---------------------------------------------------------------

    def resource_kind(self, name: str) -> str:
        return self.resource_kinds.get(name, "injected")

    def location(self, node: Node) -> str | None:
        if node.location is None:
            return None
        return f"{self.source_file}:{node.location.line}"

    def title(self, a: NodeAnalysis, role: str | None = None) -> str:
        title = f"Node {literal(a.node.id)}"
        return f"{title}, {role}" if role else title

    def node_params(self, a: NodeAnalysis) -> list[Param]:
        """Every parameter of the node: its inputs, optional inputs and resources."""
        optional = {o.name for o in a.optional}
        params = [Param(Ident(name)) for name in a.connected if name not in optional]
        params += [Param(Ident(name)) for name in a.workflow_inputs]
        params += [self.optional_param(o) for o in a.optional]
        params += [Param(Ident(name)) for name in a.resources]
        return params

    def optional_param(self, o: Any) -> Param:
        default = Code(o.default) if o.in_signature else Code(f"{self.rt}.MISSING")
        return Param(Ident(o.name), default)

    def params_for(self, a: NodeAnalysis, code: CodeAnalysis | None, *,
                   drop: Iterable[str] = ()) -> list[Param]:
        """The node's parameters that this piece of its code reads."""
        assert code is not None
        reads = set(code.free_names) | {o.name for o in code.optional}
        drop = set(drop)
        return [p for p in self.node_params(a) if p.name in reads and p.name not in drop]

    def code_function(self, a: NodeAnalysis, code: CodeAnalysis | None, prefix: str,
                      params: list[Param], *, title: str | None = None, hint: str | None = None,
                      is_async: bool = True, decorator: Code | None = None) -> NodeFunction:
        """A function whose body is user code."""
        node = a.node
        assert code is not None
        return NodeFunction(
            node.id, self.scope.define(prefix, hint or node.id), node.kind, self.location(node),
            node.options.description, params, Code(code.function_body), code,
            title=title or self.title(a), is_async=is_async, decorator=decorator,
        )

    def code_node(self, a: NodeAnalysis) -> Emitted:
        """A node whose code function is what `ctx.call` runs."""
        fn = self.code_function(a, a.code, "node", self.node_params(a))
        return Emitted([fn], fn.name)

    def piece(self, template: str, p: dict[str, Any]) -> PatternPiece:
        return PatternPiece(template, p)

    def recover(self) -> Call:
        return Call(f"{self.rt}.Recover")

    # -- the module -------------------------------------------------------------------

    def build(self) -> ModuleContext:
        for node in self.workflow.nodes:
            a = self.analysis.nodes[node.id]
            if a.handler is not None:
                self.handlers[node.id] = self.handler_function(a)
            self.emitted[node.id] = a.kind.emit(self, a)
        stages = [
            StageContext([
                ChainContext(
                    name=None,
                    waits_for=chain.waits_for,
                    calls=[self.node_call(node_id) for node_id in chain.nodes],
                )
                for chain in stage.chains
            ])
            for stage in graph.stages(self.workflow)
        ]
        for stage in stages:
            if not stage.inline:
                for chain in stage.chains:
                    chain.name = self.scope.define("chain", chain.calls[0].node_id)
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
        not_json = tuple(
            name for name, nodes in required.items()
            if any(name in code.called_names for n in nodes
                   for code in self.analysis.nodes[n].codes)
        )
        run_nodes = self.scope.define("run", "nodes")
        program_options: list[tuple[str, Any]] = [
            ("info", Source("NODE_INFO")),
            ("source_map", Source("SOURCE_MAP")),
            ("module_file", Source("__file__")),
            ("module", Source("__name__")),
        ]
        if self.used_resources:
            program_options.append(("resources", Source("RESOURCES")))
        if required:
            program_options.append(("required_inputs", Source("REQUIRED_INPUTS")))
        if not_json:
            program_options.append(("not_json", not_json))
        program_options.append(("durable", Source("DURABLE")))
        program = Call(f"{self.rt}.Program",
                       (Source("WORKFLOW"), Source("NODES"), Source(run_nodes)),
                       tuple(program_options))
        lines = {f"import {name}" for name in self.imports} | set(self.scope.imports())
        return ModuleContext(
            workflow=self.workflow.name,
            source_file=self.source_file,
            description=self.workflow.description,
            rt=self.rt,
            imports=[Code(line) for line in sorted(lines)],
            pieces=pieces,
            stages=stages,
            required_inputs={k: tuple(v) for k, v in required.items()},
            node_ids=tuple(n.id for n in self.workflow.nodes),
            durable=self.durable_table(),
            node_info={n.id: (n.kind, self.location(n)) for n in self.workflow.nodes},
            resources=resources,
            resource_functions=self.resource_functions,
            uses_resources=bool(self.used_resources),
            run_nodes=run_nodes,
            program=program,
            not_json=not_json,
            lazy_imports=[(Ident(n), m) for n, m in self.analysis.lazy_imports],
        )

    def durable_table(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        """Each node's fingerprint and upstream nodes, in workflow order (docs/durable.md)."""
        prints = node_fingerprints(self.workflow)
        upstream = graph.predecessors(self.workflow)
        return {n.id: (prints[n.id], tuple(upstream[n.id])) for n in self.workflow.nodes}

    def resource_declarations(self) -> list[tuple[str, Code]]:
        """The specs of the resources some node uses; the module opens nothing else."""
        declarations = []
        for resource in self.workflow.resources:
            if resource.name not in self.used_resources or resource.kind not in RESOURCE_SPECS:
                continue
            try:
                settings = _settings_source(resource.settings, self.rt)
            except TypeError as exc:
                raise error(
                    "KF019", f"resource {resource.name!r}: a setting cannot be written into a "
                    f"module ({exc})", resource.location,
                    "use plain values (str, number, bool, list, dict); for anything else build "
                    "the client yourself with require_resource(...) or inject it with "
                    "run(resources=...)",
                ) from None
            if resource.kind == "custom":
                settings = {**self.custom_resource(resource.name), **settings}
            spec = Call(f"{self.rt}.{RESOURCE_SPECS[resource.kind]}", (resource.name, settings))
            declarations.append((resource.name, flat(spec)))
        return declarations

    def custom_resource(self, name: str) -> dict[str, Code]:
        """A custom resource's inlined callables: each comes from a function (before
        RESOURCES in the module) that defines it and hands it back."""
        roles: dict[str, Code] = {}
        for role, code in self.analysis.resource_codes[name]:
            fn = NodeFunction(
                name, self.scope.define(role, name), "resource", _where(code), None, [],
                Code(code.function_body), code, title=f"Resource {literal(name)}, its {role}",
                is_async=False,
            )
            self.resource_functions.append(fn)
            roles[role] = Code(f"{fn.name}()")
        return roles

    def handler_function(self, a: NodeAnalysis) -> NodeFunction:
        """A custom error handler: its code runs with `error` and the inputs it reads."""
        assert a.handler is not None and a.handler_binding is not None
        binding = a.handler_binding
        optional = {o.name for o in binding.optional}
        params = [Param(Ident("error"))]
        params += [Param(Ident(n)) for n in binding.connected if n not in optional]
        params += [Param(Ident(n)) for n in binding.inputs]
        params += [self.optional_param(o) for o in binding.optional]
        params += [Param(Ident(n)) for n in binding.resources]
        return NodeFunction(
            a.node.id, self.scope.define("on_error", a.node.id), "error_handler",
            self.location(a.node), None, params, Code(a.handler.function_body), a.handler,
            title=self.title(a, "its error handler"),
        )

    def node_call(self, node_id: str) -> NodeCall:
        analysis = self.analysis.nodes[node_id]
        node = analysis.node
        emitted = self.emitted[node_id]
        group = input_targets(self.workflow, node_id)
        feeding = sorted((c for target in group for c in self.into.get(target, ())),
                         key=lambda c: self.order[id(c)])
        # Input names are values here (strings), never source.
        wires = tuple(
            (c.input, c.source, c.path) for c in feeding if c.input in analysis.connected
        ) + tuple((str(name), source, path) for name, source, path in emitted.wires)
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
        timeout = options.timeout
        if timeout is not None and not analysis.kind.may_await(analysis):
            timeout = None  # nothing could interrupt it: no timer, no watch (kflowc check: KF113)
        if timeout != DEFAULT_TIMEOUT:
            kwargs.append(("timeout", timeout))
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
        policy = node.options.retry
        assert policy is not None
        kwargs: list[tuple[str, Any]] = [
            ("max_attempts", policy.max_attempts),
            ("initial_delay", policy.initial_delay),
            ("backoff_factor", policy.backoff_factor),
            ("max_delay", policy.max_delay),
            ("retry_exceptions", tuple(Source(name) for name in policy.retry_exceptions)),
        ]
        if policy.jitter:
            kwargs.append(("jitter", True))
        return Call(f"{self.rt}.RetryPolicy", kwargs=tuple(kwargs))

    def handler(self, analysis: NodeAnalysis) -> Call:
        spec = analysis.node.options.error_handler
        assert spec is not None
        if spec.kind == "fallback":
            return Call(f"{self.rt}.Fallback", (thaw(spec.fallback_value),))
        if spec.kind == "ignore":
            return Call(f"{self.rt}.Ignore")
        if spec.kind == "log":
            return Call(f"{self.rt}.LogAndFail")
        handler = self.handlers[analysis.node.id]
        inputs = tuple(str(p.name) for p in handler.params if p.name != "error")
        return Call(f"{self.rt}.Custom", (Source(handler.name),), (("inputs", inputs),))


def _resource_args(analysis: NodeAnalysis) -> tuple[Any, ...]:
    aliases = dict(analysis.resource_aliases)
    return tuple((p, aliases[p]) if p in aliases else p for p in analysis.resources)


def _where(code: CodeAnalysis) -> str | None:
    """`file:line` where inlined code was defined."""
    if not code.statement_lines or code.file is None:
        return None
    return f"{os.path.basename(code.file)}:{code.statement_lines[0]}"


def _settings_source(value: Any, rt: Ident) -> Any:
    """A resource's settings for layout: values as they are, secrets as `rt.Secret(...)`
    (raises TypeError for a value no literal can hold)."""
    if isinstance(value, SecretRef):
        return Call(f"{rt}.Secret", (value.env,))
    if isinstance(value, EnvRef):  # read by workflow.py with os.getenv: read when it runs
        return Call(f"{rt}.Env", (value.env, value.default))
    if isinstance(value, Mapping):
        return {k: _settings_source(v, rt) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_settings_source(v, rt) for v in value]
    flat(value)  # checks it can be written
    return value
