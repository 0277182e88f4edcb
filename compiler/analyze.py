"""Analyse each node's code: what it reads, what it needs, what it outputs.

Code strings are dedented and compiled as the body of an async function (so
syntax errors read as Python's do, at the user's line); Python's symbol table
gives the code's free names, which are sorted into connected inputs, resources,
auto-imported stdlib modules, optional inputs (`globals().get`) and required
workflow inputs. LibCST parses the code and the transformers in
`kflow.transforms` turn it into the body of the node's function.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import multiprocessing
import os
import symtable
import textwrap
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import libcst as cst

from kflow.errors import CompileError, Diagnostic, error
from kflow.ir import CodeBlock, Node, Resource, SourceLocation, Workflow
from kflow.transforms import OptionalInput, OptionalInputs, as_function_body, return_result

# Modules the guide's examples use without importing them.
AUTO_IMPORTS = frozenset(
    {
        "asyncio", "base64", "collections", "datetime", "decimal", "functools", "hashlib",
        "itertools", "json", "logging", "math", "os", "random", "re", "statistics", "string",
        "sys", "time", "uuid",
    }
)
_BUILTINS = frozenset(dir(builtins))


@dataclass(frozen=True)
class CodeAnalysis:
    """One code string made into a function body, and what the body needs."""

    function_body: str  # the rewritten code, indented as a function body
    # Functions the code defines at top level: name -> is it `async def` (aliases
    # `process_item = fn` resolved), for a parallel map's process_item.
    defines: dict[str, bool] = field(default_factory=dict, compare=False)
    free_names: tuple[str, ...] = ()
    optional: tuple[OptionalInput, ...] = ()
    assigns_result: bool = False
    # The workflow.py line of each statement of `body`, in source order.
    statement_lines: tuple[int, ...] = ()
    file: str | None = None
    # Where each free name is first read, for diagnostics.
    name_locations: dict[str, SourceLocation | None] = field(default_factory=dict, compare=False)
    # The output's keys when `result` is one dict literal (nested: key -> its keys or None).
    static_keys: StaticKeys | None = None
    blocking_calls: tuple[tuple[str, SourceLocation | None], ...] = ()


@dataclass(frozen=True)
class NodeAnalysis:
    node: Node
    code: CodeAnalysis | None
    connected: tuple[str, ...]  # inputs fed by connections, in first-connection order
    resources: tuple[str, ...]  # parameter names
    # (parameter, resource) where code says `db` for its one required database, say.
    resource_aliases: tuple[tuple[str, str], ...]
    workflow_inputs: tuple[str, ...]  # required
    optional: tuple[OptionalInput, ...]
    handler: CodeAnalysis | None = None
    # Workflow inputs only the custom error handler reads (required all the same).
    handler_inputs: tuple[str, ...] = ()
    extra_codes: tuple[tuple[str, CodeAnalysis], ...] = ()  # parallel_fetch's operations
    item_is_async: bool | None = None  # parallel_map: is process_item `async def`?


@dataclass(frozen=True)
class WorkflowAnalysis:
    workflow: Workflow
    nodes: dict[str, NodeAnalysis]
    imports: tuple[str, ...]
    retry_exceptions: dict[str, str]  # dotted name -> "module" to import ("" for builtins)
    warnings: tuple[Diagnostic, ...] = field(default=())
    # Custom resources' inlined callables, by resource name.
    resource_codes: dict[str, tuple[tuple[str, CodeAnalysis], ...]] = field(default_factory=dict)


def _code_location(block: CodeBlock, line: int, col: int, indent: int) -> SourceLocation | None:
    """Map (line, col) in the dedented code to workflow.py."""
    origin = block.origin
    if origin is None:
        return None
    if not block.exact:
        return origin
    if line == 1:
        return SourceLocation(origin.file, origin.line, origin.col + col)
    return SourceLocation(origin.file, origin.line + line - 1, col + indent)


def _indent_width(text: str) -> int:
    dedented = textwrap.dedent(text)
    for raw, new in zip(text.splitlines(), dedented.splitlines(), strict=False):
        if new.strip():
            return len(raw) - len(new)
    return 0


def analyse_code(
    block: CodeBlock, node_id: str, *, what: str = "code", provided: Iterable[str] = (),
    returns: str = "result", always_return: bool = False,
) -> CodeAnalysis:
    text = textwrap.dedent(block.text)
    indent = _indent_width(block.text)
    table = _check_syntax(text, block, node_id, what, indent)
    try:
        module = cst.parse_module(text)
    except cst.ParserSyntaxError as exc:  # Python accepted it; LibCST did not.
        raise error(
            "KF001", f"node {node_id!r}: {what} cannot be parsed: {exc.message}",
            _code_location(block, exc.raw_line, exc.raw_column, indent),
            "kflow supports the Python 3.11 grammar in node code",
        ) from None

    free = _free_names(table)
    assigns_result = _assigned_here(table, returns)
    optional = OptionalInputs()
    if "globals" in free or "locals" in free:
        module = module.visit(optional)
    tree = _parse_top(text)
    appends_return = assigns_result or always_return
    if appends_return:
        module = return_result(module, returns)

    provided = set(provided)
    first_use = _first_use(tree)
    names = sorted(
        (n for n in free if n not in provided and n not in optional.found), key=first_use
    )
    return CodeAnalysis(
        function_body=as_function_body(module),
        defines=_defined_functions(tree),
        name_locations={
            n: _code_location(block, *first_use(n), indent) for n in names
        },
        static_keys=static_keys(tree, returns),
        blocking_calls=tuple(
            (call, _code_location(block, line, col, indent))
            for call, line, col in blocking_calls(tree)
        ),
        free_names=tuple(names),
        optional=tuple(optional.found.values()),
        assigns_result=assigns_result or _returns_at_top(tree),
        statement_lines=tuple(_statement_user_lines(tree, appends_return, block)),
        file=block.origin.file if block.origin else None,
    )


def _free_names(table: symtable.SymbolTable) -> set[str]:
    """Names the code reads but never binds, at any depth (builtins included: a
    connection may feed an input called `input`).

    Python's own symbol table answers this exactly, comprehension and class scopes
    included, at a fraction of the cost of LibCST's ScopeProvider (see
    docs/compiler.md), which matters for 1,000-node workflows.
    """
    free: set[str] = set()
    stack = [table]
    while stack:
        current = stack.pop()
        for symbol in current.get_symbols():
            if symbol.is_referenced() and symbol.is_global() and not symbol.is_assigned():
                free.add(symbol.get_name())
        stack.extend(current.get_children())
    return free


def _assigned_here(table: symtable.SymbolTable, name: str) -> bool:
    try:
        return table.lookup(name).is_assigned()
    except KeyError:
        return False


def _first_use(tree: ast.Module):
    """Sort key: free names in the order they first appear in the code."""
    order: dict[str, tuple[int, int]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            key = (node.lineno, node.col_offset)
            if node.id not in order or key < order[node.id]:
                order[node.id] = key
    return lambda name: order.get(name, (0, 0))


# A dict literal's keys, each mapped to its own value's keys when that is a dict literal too.
StaticKeys = dict[str, "StaticKeys | None"]

_MUTATORS = frozenset({"update", "setdefault", "pop", "popitem", "clear", "__setitem__"})


def static_keys(tree: ast.Module, name: str = "result") -> StaticKeys | None:
    """The keys of the output when the code assigns `name` exactly once, at top level, to
    a dict literal with constant string keys, and never changes it afterwards."""
    assignments = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and target.id == name:
                    assignments.append(node)
                elif _touches(target, name):
                    return None
        elif isinstance(node, ast.Delete) and any(_touches(t, name) for t in node.targets):
            return None
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in _MUTATORS and _touches(node.func.value, name)):
            return None
    if len(assignments) != 1 or assignments[0] not in tree.body:
        return None
    return _dict_keys(assignments[0].value)


def _touches(target: ast.AST, name: str) -> bool:
    """`name[...]`, `name.x` (at any depth): a change to the value `name` holds."""
    while isinstance(target, ast.Subscript | ast.Attribute):
        target = target.value
        if isinstance(target, ast.Name) and target.id == name:
            return True
    return False


def _dict_keys(value: ast.AST | None) -> StaticKeys | None:
    if not isinstance(value, ast.Dict):
        return None
    keys: StaticKeys = {}
    for key, item in zip(value.keys, value.values, strict=True):
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
            return None  # `**other` or a computed key: not known statically
        keys[key.value] = _dict_keys(item)
    return keys


_BLOCKING = {("time", "sleep"): "time.sleep()", ("requests", None): "requests"}


def blocking_calls(tree: ast.Module) -> list[tuple[str, int, int]]:
    """Blocking calls made where they would stall the event loop: in the code itself or
    in an `async def` it defines, not in a plain `def` (which may run in a thread)."""
    found = []
    stack: list[tuple[ast.AST, bool]] = [(node, True) for node in tree.body]
    while stack:
        node, in_async = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.Lambda):
            in_async = False
        elif isinstance(node, ast.AsyncFunctionDef):
            in_async = True
        if in_async and isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name):
                label = _BLOCKING.get((owner.id, node.func.attr)) or _BLOCKING.get((owner.id, None))
                if label:
                    found.append((label, node.lineno, node.col_offset))
        stack.extend((child, in_async) for child in ast.iter_child_nodes(node))
    return sorted(found, key=lambda f: (f[1], f[2]))


def _parse_top(text: str) -> ast.Module:
    # Only parses: `await` and `return` at top level are checked by _check_syntax.
    return ast.parse(text)


def _returns_at_top(tree: ast.Module) -> bool:
    """A `return` in the code itself, not in a function it defines."""
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Return):
            return True
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            stack.extend(ast.iter_child_nodes(node))
    return False


def _check_syntax(
    text: str, block: CodeBlock, node_id: str, what: str, indent: int
) -> symtable.SymbolTable:
    """Compile the code as the body of an async function (what it becomes, so `return`
    and `await` are fine) and return that function's symbol table."""
    wrapped = "async def _kflow_node():\n" + textwrap.indent(text or "pass", " ", lambda _: True)
    filename = block.origin.file if block.origin else "<code>"
    try:
        compile(wrapped, filename, "exec", dont_inherit=True)
        return symtable.symtable(wrapped, filename, "exec").get_children()[0]
    except SyntaxError as exc:
        line = (exc.lineno or 2) - 1
        col = max((exc.offset or 2) - 2, 0)
        where = _code_location(block, max(line, 1), col, indent)
        if "outside async function" in exc.msg:
            raise error(
                "KF107", f"node {node_id!r}: {exc.msg} (a plain `def`, such as a sync "
                "process_item, cannot await)", where,
                "make that function `async def`",
            ) from None
        raise error(
            "KF001", f"node {node_id!r}: syntax error in {what}: {exc.msg}", where,
            "fix the code string; it runs as the body of an async function",
        ) from None


def statement_lines(tree: ast.AST) -> list[int]:
    """Line of every statement under `tree`, in source order (black keeps the AST and
    its order, so the same walk over the formatted module pairs up one to one, and
    statements a pattern appends after the user's code come last)."""
    starts = sorted(
        (n.lineno, n.col_offset) for n in ast.walk(tree) if isinstance(n, ast.stmt) and n is not tree
    )
    return [line for line, _ in starts]


def _statement_user_lines(tree: ast.Module, appends_return: bool, block: CodeBlock) -> list[int]:
    """The workflow.py line of each statement of the function body, in source order: the
    user's statements (the transforms keep their lines), then any appended `return`."""
    lines = statement_lines(tree) + ([0] if appends_return else [])
    origin = block.origin
    if origin is None:
        return [0] * len(lines)
    if not block.exact:
        return [origin.line] * len(lines)
    # Statements kflow appends (`return result`) map to the code's last line.
    last = origin.line + max(len(block.text.rstrip().splitlines()) - 1, 0)
    return [min(origin.line + ln - 1, last) if ln else last for ln in lines]


def resolve_exception(name: str, node: Node) -> str:
    """Check a retry exception name resolves; return the module to import ('' for builtins)."""
    if "." not in name:
        obj = getattr(builtins, name, None)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            return ""
        raise error(
            "KF005", f"node {node.id!r}: retry exception {name!r} is not a builtin exception",
            node.location, "use a builtin name like 'TimeoutError' or a dotted name like "
            "'aiohttp.ClientError'",
        )
    module_name, _, attr = name.rpartition(".")
    try:
        module = importlib.import_module(module_name)
        obj = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise error(
            "KF005", f"node {node.id!r}: retry exception {name!r} cannot be resolved ({exc})",
            node.location, "check the spelling, and that the module is installed",
        ) from None
    if not (isinstance(obj, type) and issubclass(obj, BaseException)):
        raise error("KF005", f"node {node.id!r}: {name!r} is not an exception class",
                    node.location, "retry_exceptions takes exception classes")
    return module_name


CACHE_KINDS = ("cache_check", "cache_fetch", "cache_store")


def input_targets(workflow: Workflow, target: str) -> tuple[str, ...]:
    """The nodes an input connected to `target` reaches: the node itself, or all three
    nodes of a cache-aside group (its fetch code sees inputs connected to any of them)."""
    node = workflow.node(target)
    if node.kind in CACHE_KINDS:
        return (node.params["check"], node.params["fetch"], node.params["store"])
    return (target,)


# Past this many code strings, they are analysed in a process per core first: parsing
# and rewriting them is most of the analysis of a big workflow.
PARALLEL_FROM = 64
_Job = tuple[CodeBlock, str, dict[str, Any]]
_PRECOMPUTED: dict[tuple, CodeAnalysis | tuple[Diagnostic, ...]] = {}


def _job_key(block: CodeBlock, name: str, options: dict[str, Any]) -> tuple:
    # Positions are outside CodeBlock equality, but the analysis depends on them.
    return (block, block.origin, block.exact, name, tuple(sorted(
        (k, tuple(v) if isinstance(v, tuple | list) else v) for k, v in options.items())))


def cached_code(block: CodeBlock, name: str, **options: Any) -> CodeAnalysis:
    """`analyse_code`, answered from the parallel pass when it ran."""
    done = _PRECOMPUTED.get(_job_key(block, name, options))
    if done is None:
        return analyse_code(block, name, **options)
    if isinstance(done, CodeAnalysis):
        return done
    raise CompileError(done)


def _run_job(job: _Job) -> CodeAnalysis | tuple[Diagnostic, ...]:
    block, name, options = job
    try:
        return analyse_code(block, name, **options)
    except CompileError as exc:  # exceptions with diagnostics do not pickle: send them as data
        return exc.diagnostics


def _jobs(workflow: Workflow) -> list[_Job]:
    """Every code string `analyse` will analyse, with the same options it will use."""
    jobs: list[_Job] = []
    for node in workflow.nodes:
        if node.code is not None:
            shape = kind_shape(node)
            jobs.append((node.code, node.id, {"provided": shape.provided,
                                              "returns": shape.returns,
                                              "always_return": shape.always_return}))
        jobs += [(block, node.id, {"what": f"operation {key!r}"}) for key, block in node.codes]
        handler = node.options.error_handler
        if handler is not None and handler.code is not None:
            jobs.append((handler.code, node.id,
                         {"what": "error handler code", "provided": ("error",)}))
    for resource in workflow.resources:
        jobs += [(block, resource.name, {"what": f"resource {role}", "returns": role})
                 for role, block in resource.codes]
    return jobs


def _precompute(workflow: Workflow) -> None:
    _PRECOMPUTED.clear()
    jobs = _jobs(workflow)
    if len(jobs) < PARALLEL_FROM or (os.cpu_count() or 1) < 2:
        return
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=os.cpu_count(), mp_context=context) as pool:
        for job, done in zip(jobs, pool.map(_run_job, jobs, chunksize=32), strict=True):
            _PRECOMPUTED[_job_key(*job)] = done


def analyse(workflow: Workflow) -> WorkflowAnalysis:
    _precompute(workflow)
    try:
        return _analyse(workflow)
    finally:
        _PRECOMPUTED.clear()


def _analyse(workflow: Workflow) -> WorkflowAnalysis:
    connected: dict[str, dict[str, None]] = {node.id: {} for node in workflow.nodes}
    for conn in workflow.connections:
        for target in input_targets(workflow, conn.target):
            connected[target][conn.input] = None
    resource_kinds = {r.name: r.kind for r in workflow.resources}
    imports: set[str] = set()
    exceptions: dict[str, str] = {}
    warnings: list[Diagnostic] = []
    nodes: dict[str, NodeAnalysis] = {}
    errors: list[Diagnostic] = []

    for node in workflow.nodes:
        try:
            nodes[node.id] = _analyse_node(
                node, tuple(connected[node.id]), resource_kinds, imports, warnings
            )
            if node.options.retry:
                for name in node.options.retry.retry_exceptions:
                    exceptions[name] = resolve_exception(name, node)
        except CompileError as exc:
            errors.extend(exc.diagnostics)
    if not errors:
        errors.extend(_bad_paths(workflow, nodes))
        errors.extend(_check_shared(workflow))
    resource_codes: dict[str, tuple[tuple[str, CodeAnalysis], ...]] = {}
    for resource in workflow.resources:
        try:
            resource_codes[resource.name] = _analyse_resource(resource, imports)
        except CompileError as exc:
            errors.extend(exc.diagnostics)
    if errors:
        raise CompileError(errors)
    return WorkflowAnalysis(
        workflow, nodes, tuple(sorted(imports)), exceptions, tuple(warnings), resource_codes
    )


def output_keys(analysis: NodeAnalysis) -> StaticKeys | None:
    """The keys a node's output is known to have before it runs, if any."""
    node = analysis.node
    if node.kind in ("code", "retry_with_backoff", "rate_limited", "fallback_primary"):
        return analysis.code.static_keys if analysis.code is not None else None
    fixed = {
        "parallel_map": (node.params.get("output_field"), "errors", "statistics"),
        "parallel_fetch": ("successful", "failed", "statistics"),
        "batch_processor": ("results", "processed_count", "batches"),
    }.get(node.kind)
    return dict.fromkeys(fixed) if fixed else None


def _bad_paths(workflow: Workflow, nodes: dict[str, NodeAnalysis]) -> list[Diagnostic]:
    """KF104: a connection path into an output whose keys are known and lack it."""
    import difflib

    found = []
    for conn in workflow.connections:
        keys = output_keys(nodes[conn.source])
        for depth, key in enumerate(conn.path):
            if keys is None:
                break
            if key not in keys:
                walked = ".".join(("result", *conn.path[:depth]))
                close = difflib.get_close_matches(key, list(keys), n=1)
                found.append(Diagnostic(
                    "KF104", f"connection {conn.source!r} -> {conn.target!r}: {walked} has no "
                    f"key {key!r} (it has {', '.join(map(repr, keys)) or 'no keys'})",
                    conn.location,
                    f"did you mean {close[0]!r}?" if close else "connect a key the output has",
                ))
                break
            keys = keys[key]
    return found


def _check_shared(workflow: Workflow) -> list[Diagnostic]:
    """`shared=` must name a Redis resource (a cache) of the workflow."""
    kinds = {r.name: r.kind for r in workflow.resources}
    found = []
    for node in workflow.nodes:
        shared = node.params.get("shared")
        if shared and kinds.get(shared) not in ("cache", "injected"):
            found.append(Diagnostic(
                "KF006", f"node {node.id!r}: shared={shared!r} is not a Redis resource "
                f"(it is {kinds[shared] if shared in kinds else 'not declared'})",
                node.location, f"declare it with builder.with_cache({shared!r}, ...)",
            ))
    return found


def _analyse_resource(
    resource: Resource, imports: set[str]
) -> tuple[tuple[str, CodeAnalysis], ...]:
    """A custom resource's inlined callables: self-contained, but for stdlib modules."""
    analysed = []
    for role, block in resource.codes:
        code = cached_code(block, resource.name, what=f"resource {role}", returns=role)
        for name in code.free_names:
            if name in AUTO_IMPORTS:
                imports.add(name)
            elif name not in _BUILTINS:
                raise error(
                    "KF031", f"resource {resource.name!r}: its {role} uses {name!r}, which "
                    "is not defined where it is inlined", resource.location,
                    "define or import it at module level beside the function",
                )
        analysed.append((role, code))
    return tuple(analysed)


# The names the guide's code uses for "the" resource of a kind.
CONVENTIONAL_NAMES = {"db": "database", "http": "http", "api": "http", "cache": "cache"}


def _conventional_alias(name: str, node: Node, kinds: dict[str, str]) -> str | None:
    """The guide writes `required_resources=["main_db"]` and then uses `db` in the code:
    with exactly one required resource of that kind, `db` means it."""
    kind = CONVENTIONAL_NAMES.get(name)
    if kind is None:
        return None
    matches = [r for r in node.options.required_resources if kinds.get(r) == kind]
    return matches[0] if len(matches) == 1 else None


@dataclass(frozen=True)
class KindShape:
    """What a node kind's generated functions read besides its code's free names."""

    extra_reads: tuple[str, ...] = ()  # inputs the wrapper itself takes
    provided: tuple[str, ...] = ()  # names the pattern binds for the code
    returns: str = "result"  # the name the code function returns
    always_return: bool = False  # return it even if the code never assigns it


def kind_shape(node: Node) -> KindShape:
    params = node.params
    if node.kind == "batch_processor":
        return KindShape(("items",), ("items", "batch_results"), "batch_results", True)
    if node.kind == "parallel_map":
        return KindShape((params["input_field"],), (), "process_item")
    if node.kind == "cache_check":
        return KindShape(tuple(params["key_fields"]))
    return KindShape()


def _analyse_node(
    node: Node,
    connected: tuple[str, ...],
    resource_kinds: dict[str, str],
    imports: set[str],
    warnings: list[Diagnostic],
) -> NodeAnalysis:
    shape = kind_shape(node)
    code = None
    handler = None
    resource_names = set(resource_kinds)
    resources: list[str] = []
    aliases: dict[str, str] = {}
    inputs: list[str] = []
    handler_inputs: list[str] = []
    optional: list[OptionalInput] = []
    if node.kind == "resource":
        resources.append(node.params["resource"])
    if node.kind in ("cache_check", "cache_store"):
        resources.append(node.params["cache"])
    if node.params.get("shared"):  # a rate limit or breaker kept in Redis
        resources.append(node.params["shared"])
    codes: list[CodeAnalysis] = []
    if node.code is not None:
        code = cached_code(node.code, node.id, provided=shape.provided, returns=shape.returns,
                            always_return=shape.always_return)
        codes.append(code)
        _check_outputs(node, code, shape, warnings)
    extra = tuple((key, cached_code(block, node.id, what=f"operation {key!r}"))
                  for key, block in node.codes)
    codes.extend(analysis for _, analysis in extra)
    names: dict[str, None] = {}
    for analysis in codes:
        optional.extend(analysis.optional)
        names.update(dict.fromkeys(analysis.free_names))
    names.update(dict.fromkeys(shape.extra_reads))
    for name in names:
        if name in connected or name in shape.extra_reads and name not in resource_names:
            if name not in connected:
                inputs.append(name)
            continue
        if name in _BUILTINS:
            continue
        if name in resource_names:
            if name not in resources:
                resources.append(name)
        elif name in AUTO_IMPORTS:
            imports.add(name)
        elif (alias := _conventional_alias(name, node, resource_kinds)) is not None:
            resources.append(name)
            aliases[name] = alias
            warnings.append(Diagnostic(
                "KF103", f"node {node.id!r}: `{name}` is taken to mean its required "
                f"resource {alias!r}", node.location,
                f"name the resource {name!r}, or use `{alias}` in the code, to say so "
                "explicitly", severity="info",
            ))
        else:
            inputs.append(name)
    handler_spec = node.options.error_handler
    if handler_spec is not None and handler_spec.code is not None:
        handler = cached_code(handler_spec.code, node.id, what="error handler code",
                               provided=("error",))
        for name in handler.free_names:
            if name in connected or name in _BUILTINS:
                continue
            if name in AUTO_IMPORTS:
                imports.add(name)
            elif name in resource_names:
                if name not in resources:
                    resources.append(name)
            elif name not in inputs:
                handler_inputs.append(name)
    # A connection nothing reads still orders the nodes, but passes nothing.
    read = set(names) | {o.name for o in optional}
    connected = tuple(c for c in connected if c in read)
    return NodeAnalysis(
        node=node,
        code=code,
        connected=connected,
        resources=tuple(resources),
        resource_aliases=tuple(aliases.items()),
        workflow_inputs=tuple(inputs),
        optional=tuple(optional),
        handler=handler,
        handler_inputs=tuple(handler_inputs),
        extra_codes=extra,
        item_is_async=_item_is_async(code) if node.kind == "parallel_map" else None,
    )


def _check_outputs(node: Node, code: CodeAnalysis, shape: KindShape,
                   warnings: list[Diagnostic]) -> None:
    if node.kind == "parallel_map":
        if _item_is_async(code) is None:
            raise error(
                "KF017", f"parallel map {node.id!r}: its code does not define process_item",
                node.location, "define `async def process_item(item): ...` (or a plain def)",
            )
        return
    if not code.assigns_result and not shape.always_return:
        warnings.append(Diagnostic(
            "KF102", f"node {node.id!r} never sets `result`; its output will be None",
            node.location, "assign the node's output to `result`", severity="warning",
        ))


def _item_is_async(code: CodeAnalysis | None) -> bool | None:
    """Whether the code's `process_item` is `async def` (None: it defines none)."""
    return None if code is None else code.defines.get("process_item")


def _defined_functions(tree: ast.Module) -> dict[str, bool]:
    defs = {n.name: isinstance(n, ast.AsyncFunctionDef) for n in tree.body
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    for n in tree.body:  # `process_item = fn`, as inlined callables end
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Name) and n.value.id in defs:
            for target in n.targets:
                if isinstance(target, ast.Name):
                    defs[target.id] = defs[n.value.id]
    return defs


