"""`kflowc check`: every diagnostic the compiler can make without running.

Build errors (syntax, graph, paths, names) come from the analyser as they do for
`kflowc build`; this module adds the warnings and notes a build does not stop
for: names that become required inputs, connections nothing reads, outputs
nobody uses, and blocking calls in async code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from kflow.analyze import NodeAnalysis, WorkflowAnalysis, analyse, input_targets
from kflow.errors import CompileError, Diagnostic
from kflow.ir import ORDER_ONLY, Workflow
from kflow_runtime.run import DEFAULT_TIMEOUT

# Promoted to an error by --strict: a typo in node code silently becomes an input.
STRICT_ERRORS = frozenset({"KF101"})


@dataclass
class CheckReport:
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def count(self, severity: str) -> int:
        return sum(1 for d in self.diagnostics if d.severity == severity)

    @property
    def exit_code(self) -> int:
        if self.count("error"):
            return 2
        return 1 if self.count("warning") else 0

    def text(self) -> str:
        lines = [d.format() for d in self.diagnostics]
        lines.append(f"{self.count('error')} error(s), {self.count('warning')} warning(s), "
                     f"{self.count('info')} note(s)")
        return "\n".join(lines)

    def json(self) -> str:
        return json.dumps({
            "diagnostics": [
                {
                    "code": d.code, "severity": d.severity, "message": d.message,
                    "file": d.location.file if d.location else None,
                    "line": d.location.line if d.location else None,
                    "column": d.location.col + 1 if d.location else None,
                    "hint": d.hint,
                }
                for d in self.diagnostics
            ],
            "errors": self.count("error"),
            "warnings": self.count("warning"),
        }, indent=2)


def check(workflow: Workflow, *, strict: bool = False) -> CheckReport:
    """Every problem: graph errors stop here (nothing else can be trusted); otherwise
    code and cross-node errors come with the warnings about every node that analysed."""
    try:
        analysis = analyse(workflow)
    except CompileError as exc:
        return CheckReport(list(exc.diagnostics))
    from kflow.builder import runtime_extras

    diagnostics = [*analysis.errors, *analysis.warnings, *lint(analysis),
                   *runtime_extras(workflow).notes]
    if strict:
        diagnostics = [_promote(d) if d.code in STRICT_ERRORS else d for d in diagnostics]
    diagnostics.sort(key=_position)
    return CheckReport(diagnostics)


# Methods of the clients node code reaches (aiohttp, asyncpg, redis, an SDK).
_CLIENT_METHODS = frozenset({
    "get", "post", "put", "patch", "delete", "head", "request", "fetch", "fetchrow",
    "fetchval", "execute", "executemany", "acquire", "query", "send", "call", "set",
    "hget", "hset", "publish", "json", "close",
})


def _input_hint(name: str, node_id: str, codes: tuple, workflow_globals: dict[str, str]
                ) -> str:
    """KF101's hint: how to pass the input, or what the name probably is."""
    plain = (f"pass it with run({{{name!r}: ...}}) or --inputs, connect it with "
             f"add_connection(..., {node_id!r}, {name!r}), or fix the name")
    defined = workflow_globals.get(name)
    if defined is not None:
        how = ("import it in the code string" if defined == "imported" else
               "define it in the code string (or pass it as an input, "
               f"run({{{name!r}: ...}}))")
        if defined == "a function defined":
            how += (f"; a function that makes a client can be a resource: "
                    f"require_resource({name!r}, {name})")
        return (f"`{name}` is {defined} in workflow.py, but node code cannot see workflow.py's "
                f"globals (it is compiled into a module of its own): {how}")
    methods = set().union(*(c.module_like.get(name, frozenset()) for c in codes))
    if methods & _CLIENT_METHODS:
        shown = sorted(methods & _CLIENT_METHODS)[0]
        return (f"`{name}.{shown}(...)` reads like a client: declare it, e.g. "
                f"builder.with_http_client({name!r}, base_url=...) for an HTTP API, "
                f"with_database({name!r}, ...) / with_cache({name!r}, ...), or "
                f"require_resource({name!r}, factory) for another client; or {plain}")
    if any(name in c.awaited for c in codes):
        return (f"`await {name}(...)` calls a function nothing defines: define it in the code "
                f"string, pass a coroutine function in-process (run({{{name!r}: fn}})), or "
                f"make the client it stands for a resource (require_resource({name!r}, "
                "factory) / with_http_client)")
    return plain


def _file_globals(path: str | None) -> dict[str, str]:
    """What workflow.py binds at top level: name -> "a function" / "a class" / "a value"
    / "an import" (read with ast, so the file is not run again)."""
    import ast
    import linecache

    if not path:
        return {}
    try:
        tree = ast.parse("".join(linecache.getlines(path)))
    except (SyntaxError, ValueError):
        return {}
    found: dict[str, str] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            found[stmt.name] = "a function defined"
        elif isinstance(stmt, ast.ClassDef):
            found[stmt.name] = "a class defined"
        elif isinstance(stmt, ast.Import | ast.ImportFrom):
            for alias in stmt.names:
                found[(alias.asname or alias.name).split(".")[0]] = "imported"
        elif isinstance(stmt, ast.Assign | ast.AnnAssign):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for target in targets:
                for node in ast.walk(target):
                    if isinstance(node, ast.Name):
                        found[node.id] = "a value assigned"
    return found


def _promote(diagnostic: Diagnostic) -> Diagnostic:
    return Diagnostic(diagnostic.code, diagnostic.message, diagnostic.location,
                      diagnostic.hint, severity="error")


def _position(d: Diagnostic) -> tuple:
    loc = d.location
    return (loc.file if loc else "", loc.line if loc else 0, loc.col if loc else 0, d.code)


def lint(analysis: WorkflowAnalysis) -> list[Diagnostic]:
    workflow = analysis.workflow
    found: list[Diagnostic] = []
    workflow_globals = _file_globals(workflow.source_file)
    for node_id, node in analysis.nodes.items():
        codes = node.codes
        for name in (*node.workflow_inputs, *node.handler_inputs):
            where = next((c.name_locations.get(name) for c in codes if name in c.name_locations),
                         node.node.location)
            found.append(Diagnostic(
                "KF101", f"node {node_id!r} reads `{name}`, which no connection, resource or "
                "module provides: it becomes a required workflow input", where,
                _input_hint(name, node_id, codes, workflow_globals),
                severity="warning",
            ))
        timeout = node.node.options.timeout
        if timeout is not None and timeout != DEFAULT_TIMEOUT and not node.kind.may_await(node):
            found.append(Diagnostic(
                "KF113", f"node {node_id!r}: timeout={timeout:g} is not applied, since its code "
                "never awaits and so cannot be interrupted", node.node.location,
                "a timeout bounds a node's awaits; drop timeout=, or run CPU-bound work in a "
                "thread (`await asyncio.to_thread(fn)`) so that it can be bounded",
                severity="info",
            ))
        for code in () if node.kind.runs_off_loop else codes:
            for call, where in code.blocking_calls:
                found.append(Diagnostic(
                    "KF108", f"node {node_id!r}: {call} blocks the event loop in async code",
                    where, "use `await asyncio.sleep(...)` / an async client such as aiohttp, "
                    "or move it into a plain `def` run in a thread", severity="warning",
                ))
    read_by = _read_connections(analysis)
    outgoing: dict[str, list[bool]] = {}
    for index, conn in enumerate(workflow.connections):
        if conn.input == ORDER_ONLY:
            continue
        outgoing.setdefault(conn.source, []).append(index in read_by)
        if index not in read_by:
            found.append(Diagnostic(
                "KF105", f"connection {conn.source!r} -> {conn.target!r}: the target never "
                f"reads `{conn.input}`", conn.location,
                f"use `{conn.input}` in {conn.target!r}'s code, or remove the connection",
                severity="warning",
            ))
    for source, reads in outgoing.items():
        if not any(reads) and source in analysis.nodes:
            found.append(Diagnostic(
                "KF106", f"the output of {source!r} is connected but no node reads it",
                workflow.node(source).location, "remove the connections, or read the inputs",
                severity="info",
            ))
    return found


def _read_connections(analysis: WorkflowAnalysis) -> set[int]:
    read = set()
    for index, conn in enumerate(analysis.workflow.connections):
        targets = input_targets(analysis.workflow, conn.target)
        if any(t not in analysis.nodes or _reads(analysis.nodes[t], conn.input)
               for t in targets):
            read.add(index)
    return read


def _reads(node: NodeAnalysis, name: str) -> bool:
    """Whether the node's code, or its error handler, reads the connected input `name`."""
    if name in node.connected:
        return True
    return node.handler_binding is not None and name in node.handler_binding.connected
