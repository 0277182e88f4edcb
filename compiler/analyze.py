"""Analyse a workflow: every code string, every name bound, the checks across nodes.

The jobs are split by module: `kflow.code_analysis` reads one code string,
`kflow.binding` decides what each name it reads is (for node code and handler code
alike), `kflow.workflow_checks` checks across nodes, and each node kind says what its
pattern adds. This module puts them together, node by node, collecting every problem
instead of stopping at the first: `kflowc check` reports them all, and a build raises
them together.

Big workflows analyse their code strings in worker processes first (`kflow.parallel`);
the results land in an `AnalysisCache` that is passed in, not kept in a global.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from kflow import graph
from kflow.binding import AUTO_IMPORTS, BUILTINS, Binding, OptionalInput, bind
from kflow.code_analysis import CodeAnalysis, analyse_code, body_lines, expression_lines
from kflow.errors import CompileError, Diagnostic, error
from kflow.ir import CodeBlock, Node, Resource, SourceLocation, Workflow
from kflow.kinds import Kind, kind_named
from kflow.parallel import Workers
from kflow.pysource import Ident
from kflow.scope import runtime_alias
from kflow_runtime.patterns.retry import RetryPolicyError, resolve_exception


@dataclass(frozen=True)
class NodeAnalysis:
    node: Node
    kind: Kind
    code: CodeAnalysis | None
    binding: Binding  # the node's code strings and its wrapper's reads
    resources: tuple[str, ...]  # parameter names, the pattern's own first
    handler: CodeAnalysis | None = None
    handler_binding: Binding | None = None
    extra_codes: tuple[tuple[str, CodeAnalysis], ...] = ()  # parallel_fetch's operations

    @property
    def connected(self) -> tuple[str, ...]:
        """Inputs fed by connections that the node reads, in first-connection order."""
        return self.binding.connected

    @property
    def workflow_inputs(self) -> tuple[str, ...]:
        return self.binding.inputs

    @property
    def optional(self) -> tuple[OptionalInput, ...]:
        return self.binding.optional

    @property
    def resource_aliases(self) -> tuple[tuple[str, str], ...]:
        aliases = dict(self.binding.aliases)
        if self.handler_binding is not None:
            for name, resource in self.handler_binding.aliases:
                aliases.setdefault(name, resource)
        return tuple(aliases.items())

    @property
    def handler_inputs(self) -> tuple[str, ...]:
        """Required inputs only the custom error handler reads (required all the same)."""
        if self.handler_binding is None:
            return ()
        return tuple(n for n in self.handler_binding.inputs if n not in self.binding.inputs)

    @property
    def codes(self) -> tuple[CodeAnalysis, ...]:
        """Every analysed code string of the node, its handler's last."""
        found = [self.code] if self.code is not None else []
        found += [code for _, code in self.extra_codes]
        if self.handler is not None:
            found.append(self.handler)
        return tuple(found)


@dataclass(frozen=True)
class WorkflowAnalysis:
    workflow: Workflow
    nodes: dict[str, NodeAnalysis]
    imports: tuple[str, ...]
    retry_exceptions: dict[str, str]  # dotted name -> "module" to import ("" for builtins)
    warnings: tuple[Diagnostic, ...] = field(default=())
    # Custom resources' inlined callables, by resource name.
    resource_codes: dict[str, tuple[tuple[str, CodeAnalysis], ...]] = field(default_factory=dict)
    runtime: Ident = Ident("rt")
    # Problems that stop a build; nodes that had one are missing from `nodes`.
    errors: tuple[Diagnostic, ...] = ()
    # (name, module): installed modules node code reads unimported, imported on first use.
    lazy_imports: tuple[tuple[str, str], ...] = ()

    def raise_errors(self) -> None:
        if self.errors:
            raise CompileError(self.errors)

    @property
    def required_inputs(self) -> tuple[str, ...]:
        """Every required workflow input, sorted (what `kflowc build` lists)."""
        return tuple(sorted({n for a in self.nodes.values()
                             for n in (*a.workflow_inputs, *a.handler_inputs)}))


# -- the code strings of a workflow, as jobs ------------------------------------------------

# A code string, the id it is reported under, and analyse_code's options.
Job = tuple[CodeBlock, str, dict[str, Any]]
# Code strings a worker analyses (and black formats) at a time.
BATCH = 32


class AnalysisCache:
    """Analyses of code strings by job, so a job done in a worker is not done again."""

    def __init__(self) -> None:
        self._done: dict[tuple, CodeAnalysis | tuple[Diagnostic, ...]] = {}

    @staticmethod
    def key(block: CodeBlock, name: str, options: dict[str, Any]) -> tuple:
        # Positions are outside CodeBlock equality, but the analysis depends on them.
        return (block, block.origin, block.exact, name, tuple(sorted(
            (k, tuple(v) if isinstance(v, tuple | list) else v) for k, v in options.items())))

    def put(self, job: Job, done: CodeAnalysis | tuple[Diagnostic, ...]) -> None:
        self._done[self.key(*job)] = done

    def code(self, block: CodeBlock, name: str, **options: Any) -> CodeAnalysis:
        """`analyse_code`, answered from the cache when the job was done already."""
        done = self._done.get(self.key(block, name, options))
        if done is None:
            return analyse_code(block, name, **options)
        if isinstance(done, CodeAnalysis):
            return done
        raise CompileError(done)


def run_job(job: Job) -> CodeAnalysis | tuple[Diagnostic, ...]:
    block, name, options = job
    try:
        return analyse_code(block, name, **options)
    except CompileError as exc:  # exceptions with diagnostics do not pickle: send them as data
        return exc.diagnostics


def run_jobs(batch: list[Job]) -> list[CodeAnalysis | tuple[Diagnostic, ...]]:
    """`run_job` for each job, with one black call for all the bodies (see
    kflow.blackfmt.format_bodies): what a worker does with its share of a big workflow."""
    from kflow.blackfmt import format_bodies

    done = [run_job((block, name, {**options, "format": False})) for block, name, options
            in batch]
    todo = [i for i, (job, result) in enumerate(zip(batch, done, strict=True))
            if job[2].get("format") and isinstance(result, CodeAnalysis)]
    analysed: list[CodeAnalysis] = [done[i] for i in todo]  # type: ignore[misc]
    bodies = format_bodies([a.function_body[:len(a.function_body) - len(a.tail)]
                            for a in analysed])
    for i, code, body in zip(todo, analysed, bodies, strict=True):
        if body is None:  # alone, as the serial path does it (and with its error)
            done[i] = run_job(batch[i])
        else:
            body += code.tail
            done[i] = replace(code, function_body=body, formatted=True,
                              body_statement_lines=body_lines(body),
                              expression_lines=expression_lines(batch[i][0], body))
    return done


def _node_jobs(node: Node, kind: Kind, common: dict[str, Any]) -> list[Job]:
    jobs: list[Job] = []
    if node.code is not None:
        role = kind.code_role(node)
        jobs.append((node.code, node.id, {"provided": role.provided, "returns": role.returns,
                                          "always_return": role.always_return,
                                          "what": role.what, **common}))
    jobs += [(block, node.id, {"what": f"operation {key!r}", **common})
             for key, block in node.codes]
    handler = node.options.error_handler
    if handler is not None and handler.code is not None:
        jobs.append((handler.code, node.id, {"what": "error handler code",
                                             "provided": ("error",), **common}))
    return jobs


def _resource_jobs(resource: Resource, common: dict[str, Any]) -> list[Job]:
    return [(block, resource.name, {"what": f"resource {role}", "returns": role, **common})
            for role, block in resource.codes]


def jobs(workflow: Workflow, runtime: str = "rt", format_code: bool = False) -> list[Job]:
    """Every code string `analyse` will analyse, with the options it will use."""
    common = {"runtime": runtime, "format": format_code, "logger": logger_prefix(workflow)}
    found: list[Job] = []
    for node in workflow.nodes:
        found += _node_jobs(node, kind_named(node.kind), common)
    for resource in workflow.resources:
        found += _resource_jobs(resource, common)
    return found


def logger_prefix(workflow: Workflow) -> str:
    """Node code's `logging.getLogger(__name__)` is `kflow.<workflow>.<node>`."""
    return f"kflow.{workflow.name}"


def choose_runtime_alias(workflow: Workflow) -> Ident:
    texts = [block.text for job in jobs(workflow) for block in (job[0],)]
    names: set[str] = {r.name for r in workflow.resources}
    names |= {c.input for c in workflow.connections}
    for node in workflow.nodes:
        names |= set(node.options.required_resources)
        names |= set(kind_named(node.kind).reads(node))
    return runtime_alias(texts, names)


# -- the analysis ------------------------------------------------------------------------


def analyse(workflow: Workflow, *, cache: AnalysisCache | None = None,
            workers: Workers | None = None, format_code: bool = False) -> WorkflowAnalysis:
    """Analyse `workflow`. Problems are collected in `errors` (see `raise_errors`).

    `format_code`: black formats each code string's function body as it is analysed
    (in the workers, for a big workflow), as a build needs.
    """
    graph.validate(workflow)
    runtime = choose_runtime_alias(workflow)
    cache = cache if cache is not None else AnalysisCache()
    if workers is not None:
        todo = jobs(workflow, runtime, format_code)
        batches = [todo[i:i + BATCH] for i in range(0, len(todo), BATCH)]
        results = workers.map(run_jobs, batches, chunksize=1, items_count=len(todo))
        for job, done in zip(todo, (r for batch in results for r in batch), strict=True):
            cache.put(job, done)
    return _Analyser(workflow, cache, runtime, format_code).run()


class _Analyser:
    def __init__(self, workflow: Workflow, cache: AnalysisCache, runtime: Ident,
                 format_code: bool) -> None:
        self.workflow = workflow
        self.cache = cache
        self.runtime = runtime
        self.format_code = format_code
        self.resource_kinds = {r.name: r.kind for r in workflow.resources}
        self.imports: set[str] = set()
        self.lazy: set[tuple[str, str]] = set()
        self.exceptions: dict[str, str] = {}
        self.warnings: list[Diagnostic] = []
        self.errors: list[Diagnostic] = []

    def run(self) -> WorkflowAnalysis:
        from kflow.workflow_checks import bad_paths

        workflow = self.workflow
        connected = connected_inputs(workflow)
        nodes: dict[str, NodeAnalysis] = {}
        for node in workflow.nodes:
            try:
                nodes[node.id] = self.node(node, connected[node.id])
            except CompileError as exc:
                self.errors.extend(exc.diagnostics)
        self.errors.extend(bad_paths(workflow, nodes))
        resource_codes: dict[str, tuple[tuple[str, CodeAnalysis], ...]] = {}
        for resource in workflow.resources:
            try:
                resource_codes[resource.name] = self.resource(resource)
            except CompileError as exc:
                self.errors.extend(exc.diagnostics)
        return WorkflowAnalysis(
            workflow, nodes, tuple(sorted(self.imports)), self.exceptions,
            tuple(self.warnings), resource_codes, self.runtime, tuple(self.errors),
            tuple(sorted(self.lazy)),
        )

    def code(self, block: CodeBlock, name: str, **options: Any) -> CodeAnalysis:
        return self.cache.code(block, name, runtime=self.runtime, format=self.format_code,
                               logger=logger_prefix(self.workflow), **options)

    def node(self, node: Node, connected: tuple[str, ...]) -> NodeAnalysis:
        kind = kind_named(node.kind)
        problems: list[Diagnostic] = []
        code = None
        if node.code is not None:
            role = kind.code_role(node)
            code = self.code(node.code, node.id, provided=role.provided, returns=role.returns,
                             always_return=role.always_return, what=role.what)
        extra = []
        for key, block in node.codes:
            try:
                extra.append((key, self.code(block, node.id, what=f"operation {key!r}")))
            except CompileError as exc:
                problems.extend(exc.diagnostics)
        codes = ([code] if code is not None else []) + [c for _, c in extra]
        problems.extend(self.unknown_requested(node, codes))
        binding = bind(
            _ordered(name for c in codes for name in c.free_names),
            [o for c in codes for o in c.optional], node, connected=connected,
            resource_kinds=self.resource_kinds, wrapper_reads=kind.reads(node),
            module_like=_module_like(codes),
            locations={n: w for c in reversed(codes) for n, w in c.name_locations.items()},
        )
        handler, handler_binding = None, None
        spec = node.options.error_handler
        if spec is not None and spec.code is not None:
            try:
                handler = self.code(spec.code, node.id, what="error handler code",
                                    provided=("error",))
            except CompileError as exc:
                problems.extend(exc.diagnostics)
            else:
                handler_binding = bind(handler.free_names, handler.optional, node,
                                       connected=connected, resource_kinds=self.resource_kinds,
                                       module_like=handler.module_like,
                                       locations=handler.name_locations)
        for found in (binding, handler_binding):
            if found is not None:
                self.imports.update(found.imports)
                self.lazy.update(found.lazy)
                self.warnings.extend(found.notes)
        resources = _ordered((*kind.resources(node), *binding.resources,
                              *(handler_binding.resources if handler_binding else ())))
        for diagnostic in kind.check_code(node, code):
            (problems if diagnostic.severity == "error" else self.warnings).append(diagnostic)
        if node.options.retry is not None:
            for name in node.options.retry.retry_exceptions:
                try:
                    self.exceptions[name] = check_exception(name, node)
                except CompileError as exc:
                    problems.extend(exc.diagnostics)
        if problems:
            raise CompileError(problems)
        return NodeAnalysis(node, kind, code, binding, resources, handler, handler_binding,
                            tuple(extra))

    def unknown_requested(self, node: Node, codes: list[CodeAnalysis]) -> list[Diagnostic]:
        """KF006: `await get_resource("name")` of a resource the workflow never declares."""
        from kflow.values import did_you_mean

        found = []
        for code in codes:
            for name, where in code.get_resources.items():
                if name not in self.resource_kinds:
                    declared = sorted(self.resource_kinds)
                    found.append(Diagnostic(
                        "KF006", f"node {node.id!r}: get_resource({name!r}) asks for a "
                        "resource the workflow does not declare", where,
                        did_you_mean(name, declared) or (
                            f"the declared resources are {', '.join(declared)}" if declared
                            else f"declare it first, e.g. builder.with_database({name!r}, ...)"
                        ),
                    ))
        return found

    def resource(self, resource: Resource) -> tuple[tuple[str, CodeAnalysis], ...]:
        """A custom resource's inlined callables: self-contained, but for stdlib modules."""
        analysed = []
        for role, block in resource.codes:
            code = self.code(block, resource.name, what=f"resource {role}", returns=role)
            for name in code.free_names:
                if name in AUTO_IMPORTS:
                    self.imports.add(name)
                elif name not in BUILTINS:
                    raise error(
                        "KF031", f"resource {resource.name!r}: its {role} uses {name!r}, "
                        "which is not defined where it is inlined", resource.location,
                        "define or import it at module level beside the function",
                    )
            analysed.append((role, code))
            self.warnings.extend(inlined_secrets(resource, role, block))
        return tuple(analysed)


def inlined_secrets(resource: Resource, role: str, block: CodeBlock) -> list[Diagnostic]:
    """KF109: a credential-looking literal in code inlined from a custom resource's
    factory (or health check, or cleanup) would be written into the module."""
    from kflow.secrets import secret_literals

    found = []
    for name, line in secret_literals(block.text):
        origin = block.origin
        where = origin if origin is None or not block.exact else SourceLocation(
            origin.file, origin.line + line - 1, 0)
        found.append(Diagnostic(
            "KF109", f"resource {resource.name!r}: its {role} holds what looks like a "
            f"credential ({name}), which is written into the module as it is", where,
            f"pass it as require_resource({resource.name!r}, ..., settings={{...}}): the "
            f"module then reads it from the environment (KFLOW_{resource.name.upper()}_...)",
            severity="warning",
        ))
    return found


def _module_like(codes: list[CodeAnalysis]) -> dict[str, frozenset[str]]:
    """Names every code string of the node reads only as `name.attr`, with the attrs."""
    found: dict[str, frozenset[str]] = {}
    bare = {n for c in codes for n in c.free_names if n not in c.module_like}
    for code in codes:
        for name, attributes in code.module_like.items():
            if name not in bare:
                found[name] = found.get(name, frozenset()) | attributes
    return found


def _ordered(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


def input_targets(workflow: Workflow, target: str) -> tuple[str, ...]:
    """The nodes an input connected to `target` reaches (see Kind.group)."""
    node = workflow.node(target)
    return kind_named(node.kind).group(node)


def connected_inputs(workflow: Workflow) -> dict[str, tuple[str, ...]]:
    """Each node's connected input names, in first-connection order."""
    connected: dict[str, dict[str, None]] = {node.id: {} for node in workflow.nodes}
    for conn in workflow.connections:
        for target in input_targets(workflow, conn.target):
            connected[target][conn.input] = None
    return {node_id: tuple(names) for node_id, names in connected.items()}


def check_exception(name: str, node: Node) -> str:
    """Check a retry exception name resolves; return the module to import ('' for builtins)."""
    try:
        resolve_exception(name)
    except RetryPolicyError as exc:
        builtin = "." not in name
        raise error(
            "KF005", f"node {node.id!r}: retry exception {name!r} "
            f"{_exception_problem(name, exc)}", node.location,
            "use a builtin name like 'TimeoutError' or a dotted name like "
            "'aiohttp.ClientError'" if builtin else
            "check the spelling, and that the module is installed",
        ) from None
    return name.rpartition(".")[0] if "." in name else ""


def _exception_problem(name: str, exc: RetryPolicyError) -> str:
    if "." not in name:
        return "is not a builtin exception"
    text = exc.message
    prefix = f"retry exception {name!r} "
    return text[len(prefix):] if text.startswith(prefix) else text
