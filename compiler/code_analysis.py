"""Analyse one code string: what it reads, what it binds, what it outputs.

Code strings are dedented and compiled as the body of an async function (so syntax
errors read as Python's do, at the user's line); Python's symbol table gives the code's
free names and every name it uses; LibCST parses it and the transformers in
`kflow.transforms` turn it into the body of the node's function. This module knows
nothing about nodes' kinds or the workflow: `kflow.binding` decides what each free name
is, and `kflow.analyze` puts the pieces together.
"""

from __future__ import annotations

import ast
import io
import symtable
import textwrap
import tokenize
from collections.abc import Iterable
from dataclasses import dataclass, field

from kflow.binding import OptionalInput
from kflow.errors import error
from kflow.ir import CodeBlock, SourceLocation


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
    # Whether the code itself (not a function it defines) can suspend: `await`, `async for`,
    # `async with` or an async comprehension. Code that cannot is never interrupted by a
    # timeout, so the module applies none to it (issue 15).
    awaits: bool = True
    # Names the code calls (`fetch()`) or uses as a client (`await api.get(...)`,
    # `async with pool...`, `async for row in cursor`): a workflow input among them is a
    # function or an object, which JSON cannot carry.
    called_names: frozenset[str] = frozenset()
    # Every name the code binds or reads, at any depth: generated names must avoid them.
    identifiers: frozenset[str] = frozenset()
    # Whether `function_body` is already as black formats it (see kflow.blackfmt), and
    # then the line (1-based, within the body) of each of its statements.
    formatted: bool = False
    body_statement_lines: tuple[int, ...] = ()
    # The last line of `function_body` when it is kflow's `return result` after a simple
    # statement: black would leave it as it is, so black is not given it (a third of the
    # lines of a typical node body).
    tail: str = ""
    # workflow.py lines where a path through the code ends without assigning `result`
    # (the name it returns): the appended `return result` would find it unbound.
    unset_ends: tuple[int, ...] = ()
    # Free names read only as `name.attr` (a module, perhaps), with the attrs read.
    module_like: dict[str, frozenset[str]] = field(default_factory=dict, compare=False)
    # Inside multi-line statements: (statement index, lines past the statement's first line
    # in `function_body`, workflow.py line) of each expression starting on a later line,
    # so that an error is placed at the failing expression's line (Python 3.11 positions).
    expression_lines: tuple[tuple[int, int, int], ...] = ()
    # Free names the code awaits a call of (`await fetch_user(...)`).
    awaited: frozenset[str] = frozenset()
    # `await get_resource("name")`: each resource so requested, where it first is.
    get_resources: dict[str, SourceLocation | None] = field(default_factory=dict,
                                                            compare=False)


def code_location(block: CodeBlock, line: int, col: int, indent: int) -> SourceLocation | None:
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
    returns: str = "result", always_return: bool = False, runtime: str = "rt",
    format: bool = False, logger: str = "",
) -> CodeAnalysis:
    """Analyse `block`, the `what` of node (or resource) `node_id`. `provided` are names
    the pattern binds for it; `runtime` is the module's alias of kflow_runtime; `format`
    has black format the function body here (a build does; `kflowc check` need not);
    `logger` prefixes the node's logger name (`logging.getLogger(__name__)` becomes
    `<logger>.<node_id>`)."""
    try:
        return _analyse(block, node_id, what, provided, returns, always_return, runtime,
                        format, f"{logger}.{node_id}" if logger else "")
    except (RecursionError, MemoryError):
        origin = block.origin
        raise error(
            "KF001", f"node {node_id!r}: {what} is nested too deeply to compile",
            origin, "split the long expression into several statements",
        ) from None


def _analyse(block: CodeBlock, node_id: str, what: str, provided: Iterable[str], returns: str,
             always_return: bool, runtime: str, format: bool, logger: str) -> CodeAnalysis:
    text = textwrap.dedent(block.text)
    indent = _indent_width(block.text)
    table = _check_syntax(text, block, node_id, what, indent)
    tree = ast.parse(text)
    facts = _scan(tree, returns)
    _check_not_generator(facts, block, node_id, what, indent)

    free, every = _names(table)
    assigns_result = _assigned_here(table, returns)
    appends_return = assigns_result or always_return
    found: dict[str, OptionalInput] = {}
    rewrite = "globals" in free or "locals" in free  # globals().get(...): OptionalInputs
    resources = "get_resource" in free and "get_resource" not in provided
    logger = logger if "__name__" in free and "__name__" not in provided else ""
    requested: dict[str, tuple[int, int]] = {}
    body = None if rewrite or resources or logger else plain_body(
        text, tree, returns if appends_return else None)
    if body is None:  # a rewrite is needed (or the layout is not plain): LibCST does it
        body, found, requested = _rewritten(text, block, node_id, what, indent, runtime,
                                            returns if appends_return else None, rewrite,
                                            resources, logger)
    if resources:
        free = (free - {"get_resource"}) | set(requested)
        facts.names.update({n: at for n, at in requested.items() if n not in facts.names})
    provided = set(provided)
    first_use = facts.first_use
    names = sorted(
        (n for n in free if n not in provided and n not in found), key=first_use
    )
    formatted = False
    tail = _tail(body, tree, returns) if appends_return else ""
    if format:
        formatted_body = _black_body(body[:len(body) - len(tail)], block, node_id, what)
        if formatted_body is not None:
            body, formatted = formatted_body + tail, True
    return CodeAnalysis(
        function_body=body,
        expression_lines=_expression_lines(tree, body, block) if formatted else (),
        formatted=formatted,
        tail=tail,
        body_statement_lines=body_lines(body) if formatted else (),
        defines=_defined_functions(tree),
        name_locations={
            n: code_location(block, *first_use(n), indent) for n in names
        },
        static_keys=facts.static_keys(tree),
        blocking_calls=tuple(
            (call, code_location(block, line, col, indent))
            for call, line, col in sorted(facts.blocking, key=lambda f: (f[1], f[2]))
        ),
        awaits=facts.awaits,
        called_names=frozenset(facts.called),
        free_names=tuple(names),
        optional=tuple(found.values()),
        assigns_result=assigns_result or facts.returns_at_top,
        statement_lines=tuple(_statement_user_lines(facts.statements, appends_return, block)),
        file=block.origin.file if block.origin else None,
        identifiers=frozenset(every | set(found)),
        get_resources={n: code_location(block, *at, indent) for n, at in requested.items()},
        awaited=frozenset(n for n in names if n in facts.awaited),
        module_like={n: frozenset(facts.attributes[n]) for n in names
                     if n in facts.attributes and n not in facts.bare},
        unset_ends=_user_lines(sorted(_unset_ends(tree.body, returns)), block)
        if assigns_result and appends_return else (),
    )


def expression_lines(block: CodeBlock, body: str) -> tuple[tuple[int, int, int], ...]:
    """CodeAnalysis.expression_lines of `block` made into the (formatted) `body`."""
    return _expression_lines(ast.parse(textwrap.dedent(block.text)), body, block)


def _expression_lines(tree: ast.Module, body: str, block: CodeBlock
                      ) -> tuple[tuple[int, int, int], ...]:
    """CodeAnalysis.expression_lines: the user's tree and the function body's, walked side
    by side (black keeps the AST; where a transform changed a node, its subtree is left
    out and keeps its statement's line)."""
    origin = block.origin
    if origin is None or not block.exact or not any(
            (n.end_lineno or n.lineno) > n.lineno for n in ast.walk(tree)
            if isinstance(n, ast.stmt) and not isinstance(n, _COMPOUND)):
        return ()  # no simple statement spans lines: nothing finer than statements
    try:
        function = ast.parse("async def _():\n" + body).body[0]
    except SyntaxError:
        return ()
    user_statements = _ordered_statements(tree)
    index = {id(n): i for i, n in enumerate(user_statements)}
    gen_start: dict[int, int] = {}
    found: dict[tuple[int, int], int] = {}
    stack: list[tuple[ast.AST, ast.AST, int]] = [
        (u, g, -1) for u, g in zip(tree.body, function.body, strict=False)]
    while stack:
        u, g, current = stack.pop()
        if type(u) is not type(g):
            continue
        if isinstance(u, ast.stmt):
            current = index[id(u)]
            gen_start[current] = g.lineno - 1  # the body's lines, `async def` line dropped
        elif isinstance(u, ast.expr | ast.keyword) and current >= 0:
            delta = g.lineno - 1 - gen_start[current]
            if delta > 0:
                found.setdefault((current, delta), origin.line + u.lineno - 1)
        u_children, g_children = list(ast.iter_child_nodes(u)), list(ast.iter_child_nodes(g))
        if len(u_children) == len(g_children):
            stack.extend((a, b, current) for a, b in zip(reversed(u_children),
                                                         reversed(g_children), strict=True))
    return tuple(sorted((i, d, line) for (i, d), line in found.items()))


_COMPOUND = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.Try,
             ast.TryStar, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Match)


def _ordered_statements(tree: ast.AST) -> list[ast.stmt]:
    """Every statement under `tree` in the order `statement_lines` gives their lines."""
    found = [n for n in ast.walk(tree) if isinstance(n, ast.stmt) and n is not tree]
    return sorted(found, key=lambda n: (n.lineno, n.col_offset))


def _user_lines(lines: Iterable[int], block: CodeBlock) -> tuple[int, ...]:
    lines = tuple(lines)
    origin = block.origin
    if origin is None or not lines:
        return ()
    if not block.exact:
        return (origin.line,)
    return tuple(origin.line + line - 1 for line in lines)


def _binds(target: ast.AST, name: str) -> bool:
    if isinstance(target, ast.Name):
        return target.id == name
    if isinstance(target, ast.Tuple | ast.List):
        return any(_binds(t, name) for t in target.elts)
    if isinstance(target, ast.Starred):
        return _binds(target.value, name)
    return False


def _assigns(stmt: ast.stmt, name: str) -> bool:
    """Whether running `stmt` to its end binds `name` (on every path, for simple ones)."""
    if isinstance(stmt, ast.Assign):
        return any(_binds(t, name) for t in stmt.targets)
    if isinstance(stmt, ast.AnnAssign | ast.AugAssign):
        return stmt.value is not None and _binds(stmt.target, name)
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return stmt.name == name
    if isinstance(stmt, ast.Import | ast.ImportFrom):
        return any((a.asname or a.name.split(".")[0]) == name for a in stmt.names)
    if isinstance(stmt, ast.Expr):  # `(result := ...)` at top of an expression statement
        return any(isinstance(n, ast.NamedExpr) and n.target.id == name
                   for n in ast.walk(stmt.value) if not isinstance(n, ast.Lambda))
    return False


_ENDS = (ast.Return, ast.Raise, ast.Continue, ast.Break)


def _unset_ends(body: list[ast.stmt], name: str, breaks: set[int] | None = None) -> set[int]:
    """The lines (in the dedented code) at which a path leaves `body` normally without
    having bound `name` since entering it; empty when every path binds it or stops
    (`return`, `raise`). Conservative where it cannot tell: a loop may run no times.
    `breaks` collects the lines of `break`s of the enclosing `while True` so reached."""
    ends: set[int] = {0}  # 0: entering the block, nothing bound yet
    for stmt in body:
        if not ends:
            break
        ends = _stmt_ends(stmt, name, breaks)
    return ends - {0}


def _stmt_ends(stmt: ast.stmt, name: str, breaks: set[int] | None) -> set[int]:
    if isinstance(stmt, ast.Break) and breaks is not None:
        breaks.add(stmt.lineno)
    if _assigns(stmt, name) or isinstance(stmt, _ENDS):
        return set()
    if isinstance(stmt, ast.If):
        orelse = _block_ends(stmt.orelse, name, stmt.lineno, breaks)
        return _block_ends(stmt.body, name, stmt.lineno, breaks) | orelse
    if isinstance(stmt, ast.With | ast.AsyncWith):
        if any(i.optional_vars is not None and _binds(i.optional_vars, name)
               for i in stmt.items):
            return set()
        return _block_ends(stmt.body, name, stmt.lineno, breaks)
    if isinstance(stmt, ast.For | ast.AsyncFor | ast.While):
        if isinstance(stmt, ast.While) and _always_true(stmt.test):
            # `while True:` ends by a `break` (or return, raise): where one is reached
            # without the name bound. (A later pass of the body starts as the first did.)
            found: set[int] = set()
            _unset_ends(stmt.body, name, found)
            return found
        # The body may run no times, or end by `break`: where the loop ends is its line.
        return {stmt.lineno, *(_unset_ends(stmt.orelse, name) if stmt.orelse else ())}
    if isinstance(stmt, ast.Try | ast.TryStar):
        ends = _block_ends([*stmt.body, *stmt.orelse], name, stmt.lineno, breaks)
        for handler in stmt.handlers:
            ends |= _block_ends(handler.body, name, handler.lineno, breaks)
        if stmt.finalbody:  # every path runs it: it ends them, and may bind the name
            return _unset_ends(stmt.finalbody, name, breaks) if ends else set()
        return ends
    if isinstance(stmt, ast.Match):
        ends = set()
        for case in stmt.cases:
            ends |= _block_ends(case.body, name, case.pattern.lineno, breaks)
        if not any(isinstance(c.pattern, ast.MatchAs) and c.pattern.pattern is None
                   and c.guard is None for c in stmt.cases):
            ends.add(stmt.lineno)
        return ends
    return {stmt.lineno}


def _block_ends(body: list[ast.stmt], name: str, line: int, breaks: set[int] | None
                ) -> set[int]:
    """`_unset_ends` of a nested block; an empty one (`else` left out) ends at `line`."""
    return _unset_ends(body, name, breaks) if body else {line}


def _always_true(test: ast.expr) -> bool:
    return isinstance(test, ast.Constant) and bool(test.value)


def _rewritten(text: str, block: CodeBlock, node_id: str, what: str, indent: int, runtime: str,
               returns: str | None, rewrite: bool, resources: bool = False, logger: str = "",
               ) -> tuple[str, dict[str, OptionalInput], dict[str, tuple[int, int]]]:
    """The function body as the LibCST transformers make it (kflow.transforms), the
    optional inputs found and the resources `await get_resource(...)` asks for."""
    import libcst as cst

    from kflow.transforms import (
        GetResource,
        LoggerNames,
        OptionalInputs,
        as_function_body,
        return_result,
    )

    try:
        module = cst.parse_module(text)
    except cst.ParserSyntaxError as exc:  # Python accepted it; LibCST did not.
        raise error(
            "KF001", f"node {node_id!r}: {what} cannot be parsed: {exc.message}",
            code_location(block, exc.raw_line, exc.raw_column, indent),
            "kflow supports the Python 3.11 grammar in node code",
        ) from None
    optional = OptionalInputs(runtime)
    if rewrite:
        module = module.visit(optional)
    if logger:
        module = module.visit(LoggerNames(logger))
    requested: dict[str, tuple[int, int]] = {}
    if resources:
        getter = GetResource()
        module = cst.MetadataWrapper(module).visit(getter)
        if getter.problems:
            problem, line, col = getter.problems[0]
            raise error("KF006", f"node {node_id!r}: {problem}",
                        code_location(block, line, col, indent),
                        "write `await get_resource('name')` with a declared resource's "
                        "name, or use the resource by that name directly")
        requested = getter.found
    if returns is not None:
        module = return_result(module, returns)
    return as_function_body(module), optional.found, requested


_STRING_SPANS = {tokenize.STRING}
_FSTRING_START = getattr(tokenize, "FSTRING_START", None)  # Python 3.12's f-string tokens
_FSTRING_END = getattr(tokenize, "FSTRING_END", None)


def plain_body(text: str, tree: ast.Module, returns: str | None) -> str | None:
    """The code as a function body without rewriting it: every line indented by four
    spaces except those that begin inside a string literal (whose content must not
    change), then `return <returns>`. Python's tokenizer says which lines those are.

    This is what the LibCST path gives for code that needs no rewrite, without LibCST's
    cost (about 0.75 ms a code string, and its import): used when the code's comments
    all sit between its first and last statement, so that where LibCST would attach
    them cannot matter. Otherwise None (the caller takes the LibCST path).
    """
    if not tree.body:
        return None
    first = min([tree.body[0].lineno,
                 *(d.lineno for d in getattr(tree.body[0], "decorator_list", ()))])
    last = tree.body[-1].end_lineno or tree.body[-1].lineno
    inside: set[int] = set()
    opened: list[int] = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            kind, (start, _), (end, _) = token.type, token.start, token.end
            if kind == tokenize.COMMENT and not first <= start <= last:
                return None
            if kind in _STRING_SPANS and end > start:
                inside.update(range(start + 1, end + 1))
            elif kind == _FSTRING_START:
                opened.append(start)
            elif kind == _FSTRING_END and opened:
                begun = opened.pop()
                inside.update(range(begun + 1, end + 1))
    except (tokenize.TokenError, SyntaxError):
        return None
    lines = text.split("\n")[first - 1:last]
    body = [line if row in inside else ("    " + line if line.strip() else "")
            for row, line in enumerate(lines, first)]
    if returns is not None:
        body.append(f"    return {returns}")
    return "\n".join(body)


# Statements after which black puts nothing between them and a `return` at the same depth
# (after imports, defs and classes it adds a blank line; compound statements may end in one).
_PLAIN_LAST = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Raise, ast.Pass,
               ast.Delete, ast.Assert, ast.Return, ast.Global, ast.Nonlocal)


def _tail(body: str, tree: ast.Module, returns: str) -> str:
    tail = f"\n    return {returns}"
    last = tree.body[-1] if tree.body else None
    docstring = (isinstance(last, ast.Expr) and isinstance(last.value, ast.Constant)
                 and isinstance(last.value.value, str))  # black has rules for docstrings
    if isinstance(last, _PLAIN_LAST) and not docstring and body.endswith(tail):
        return tail
    return ""


def body_lines(body: str) -> tuple[int, ...]:
    """The line (1-based, within `body`) of each statement of a function body."""
    function = ast.parse("async def _():\n" + body).body[0]
    return tuple(line - 1 for line in statement_lines(function))


def _black_body(body: str, block: CodeBlock, node_id: str, what: str) -> str | None:
    from kflow.blackfmt import Failure, format_body

    try:
        return format_body(body)
    except Failure as exc:
        raise error("KF001", f"node {node_id!r}: {what} cannot be formatted ("
                    f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                    block.origin, "split long or deeply nested expressions into several "
                    "statements") from None


def _names(table: symtable.SymbolTable) -> tuple[set[str], set[str]]:
    """(free, every): names the code reads but never binds, at any depth (builtins
    included: a connection may feed an input called `input`), and every name it uses.

    Python's own symbol table answers this exactly, comprehension and class scopes
    included, at a fraction of the cost of LibCST's ScopeProvider (see
    docs/compiler.md), which matters for 1,000-node workflows.
    """
    free: set[str] = set()
    every: set[str] = set()
    stack = [table]
    while stack:
        current = stack.pop()
        for symbol in current.get_symbols():
            every.add(symbol.get_name())
            if symbol.is_referenced() and symbol.is_global() and not symbol.is_assigned():
                free.add(symbol.get_name())
        stack.extend(current.get_children())
    return free, every


def _assigned_here(table: symtable.SymbolTable, name: str) -> bool:
    try:
        return table.lookup(name).is_assigned()
    except KeyError:
        return False


class _Facts:
    """What one walk over the code's tree finds (several questions, one traversal: the
    walks were most of the analysis of a small code string)."""

    __slots__ = ("names", "statements", "yields", "returns_at_top", "blocking",
                 "assignments", "changed", "attributes", "bases", "bare", "awaited",
                 "awaits", "called")

    def __init__(self) -> None:
        self.names: dict[str, tuple[int, int]] = {}  # first read of each name
        self.statements: list[tuple[int, int]] = []  # every statement's start, in any order
        self.yields: list[tuple[int, int]] = []  # `yield` in the code itself
        self.returns_at_top = False  # `return` in the code itself
        self.blocking: list[tuple[str, int, int]] = []  # blocking calls in async code
        self.assignments: list[ast.stmt] = []  # `<returns> = ...`
        self.changed = False  # `<returns>[k] = ...`, `<returns>.update(...)`, `del ...`
        self.attributes: dict[str, set[str]] = {}  # `name.attr`: the attrs read of each name
        self.bases: set[int] = set()  # ids of the Name nodes that are such `name`s
        self.bare: set[str] = set()  # names also read other than as `name.attr`
        self.awaited: set[str] = set()  # `await name(...)`
        self.awaits = False  # the code itself can suspend (see CodeAnalysis.awaits)
        self.called: set[str] = set()  # see CodeAnalysis.called_names

    def first_use(self, name: str) -> tuple[int, int]:
        """Sort key: free names in the order they first appear in the code."""
        return self.names.get(name, (0, 0))

    def static_keys(self, tree: ast.Module) -> StaticKeys | None:
        """The keys of the output when the code assigns it exactly once, at top level, to
        a dict literal with constant string keys, and never changes it afterwards."""
        if self.changed or len(self.assignments) != 1 or self.assignments[0] not in tree.body:
            return None
        return _dict_keys(self.assignments[0].value)


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_SUSPENDS = (ast.Await, ast.AsyncFor, ast.AsyncWith)


def _scan(tree: ast.Module, returns: str) -> _Facts:
    facts = _Facts()
    names = facts.names
    # (node, in the code itself (not a def it makes), in async code)
    stack: list[tuple[ast.AST, bool, bool]] = [(node, True, True) for node in tree.body]
    while stack:
        node, top, in_async = stack.pop()
        kind = type(node)
        if kind is ast.Name:
            key = (node.lineno, node.col_offset)
            if node.id not in names or key < names[node.id]:
                names[node.id] = key
            if id(node) not in facts.bases:
                facts.bare.add(node.id)
            continue
        if kind is ast.Await and type(node.value) is ast.Call and type(
                node.value.func) is ast.Name:
            facts.awaited.add(node.value.func.id)
        elif kind is ast.Attribute and type(node.value) is ast.Name:
            facts.bases.add(id(node.value))
            facts.attributes.setdefault(node.value.id, set()).add(node.attr)
        if isinstance(node, ast.stmt):
            facts.statements.append((node.lineno, node.col_offset))
            if kind is ast.Return and top:
                facts.returns_at_top = True
            elif kind in (ast.Assign, ast.AugAssign, ast.AnnAssign):
                _note_assignment(node, returns, facts)
            elif kind is ast.Delete and any(_touches(t, returns) for t in node.targets):
                facts.changed = True
        elif kind in (ast.Yield, ast.YieldFrom) and top:
            facts.yields.append((node.lineno, node.col_offset))
        elif kind is ast.Call:
            func = node.func
            if isinstance(func, ast.Name):
                facts.called.add(func.id)
            if isinstance(func, ast.Attribute):
                if func.attr in _MUTATORS and _touches(func.value, returns):
                    facts.changed = True
                if in_async and isinstance(func.value, ast.Name):
                    owner = func.value.id
                    label = _BLOCKING.get((owner, func.attr)) or _BLOCKING.get((owner, None))
                    if label:
                        facts.blocking.append((label, node.lineno, node.col_offset))
        if kind in _SUSPENDS or (kind is ast.comprehension and node.is_async):
            facts.awaits = facts.awaits or top
            if kind is ast.Await:
                _note_client(node.value, facts.called)
            elif kind is ast.AsyncWith:
                for item in node.items:
                    _note_client(item.context_expr, facts.called)
            elif kind is ast.AsyncFor:
                _note_client(node.iter, facts.called)
        if isinstance(node, _SCOPES):
            top = False
            if kind is not ast.ClassDef:  # a class body runs where the class statement is
                in_async = kind is ast.AsyncFunctionDef
        stack.extend((child, top, in_async) for child in ast.iter_child_nodes(node))
    return facts


def _note_client(value: ast.AST, called: set[str]) -> None:
    """`await x.a.b(...)`, `async with x.connect()`, `async for r in x`: note `x`."""
    if isinstance(value, ast.Call):
        value = value.func
    while isinstance(value, ast.Attribute):
        value = value.value
    if isinstance(value, ast.Name):
        called.add(value.id)


def _note_assignment(node: ast.stmt, returns: str, facts: _Facts) -> None:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    for target in targets:
        if isinstance(target, ast.Name) and target.id == returns:
            facts.assignments.append(node)
        elif _touches(target, returns):
            facts.changed = True


# A dict literal's keys, each mapped to its own value's keys when that is a dict literal too.
StaticKeys = dict[str, "StaticKeys | None"]

_MUTATORS = frozenset({"update", "setdefault", "pop", "popitem", "clear", "__setitem__"})


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


def _check_not_generator(facts: _Facts, block: CodeBlock, node_id: str, what: str,
                         indent: int) -> None:
    """Node code runs as a function that returns its result: `yield` would make it a
    generator, whose module does not even compile (`return` with a value)."""
    if facts.yields:
        line, col = min(facts.yields)
        raise error(
            "KF001", f"node {node_id!r}: {what} uses `yield`, but it runs as a function "
            "that returns its output", code_location(block, line, col, indent),
            "collect the values in a list and assign it to `result`; a generator can live "
            "in a function the code defines",
        )


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
        where = code_location(block, max(line, 1), col, indent)
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
    except ValueError as exc:  # e.g. a NUL character (the IR refuses them; belt and braces)
        raise error("KF001", f"node {node_id!r}: {what} cannot be compiled: {exc}",
                    block.origin, "fix the code string") from None


def statement_lines(tree: ast.AST) -> list[int]:
    """Line of every statement under `tree`, in source order (black keeps the AST and
    its order, so the same walk over the formatted module pairs up one to one, and
    statements a pattern appends after the user's code come last)."""
    starts = sorted(
        (n.lineno, n.col_offset) for n in ast.walk(tree) if isinstance(n, ast.stmt) and n is not tree
    )
    return [line for line, _ in starts]


def _statement_user_lines(starts: list[tuple[int, int]], appends_return: bool,
                          block: CodeBlock) -> list[int]:
    """The workflow.py line of each statement of the function body, in source order: the
    user's statements (the transforms keep their lines), then any appended `return`."""
    lines = [line for line, _ in sorted(starts)] + ([0] if appends_return else [])
    origin = block.origin
    if origin is None:
        return [0] * len(lines)
    if not block.exact:
        return [origin.line] * len(lines)
    # Statements kflow appends (`return result`) map to the code's last line.
    last = origin.line + max(len(block.text.rstrip().splitlines()) - 1, 0)
    return [min(origin.line + ln - 1, last) if ln else last for ln in lines]


def _defined_functions(tree: ast.Module) -> dict[str, bool]:
    defs = {n.name: isinstance(n, ast.AsyncFunctionDef) for n in tree.body
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    for n in tree.body:  # `process_item = fn`, as inlined callables end
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Name) and n.value.id in defs:
            for target in n.targets:
                if isinstance(target, ast.Name):
                    defs[target.id] = defs[n.value.id]
    return defs
