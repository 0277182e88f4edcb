"""Assemble the module from formatted pieces, then map its lines back to workflow.py.

black formats what holds user code (each node function, cached by its text) and
the header; the runner is already in black's style (kflow.layout) unless a
line came out too long. Pieces are joined with the two blank lines black puts
between top-level definitions, so the whole module is black-stable.

black moves lines, so the source map is built from the formatted pieces: black
keeps the AST, so the statements of each node function, walked in the same
order as the analyser walked the user's code, pair up one to one.
"""

from __future__ import annotations

import ast
from functools import lru_cache

from kflow.blackfmt import Failure, format_source
from kflow.code_analysis import CodeAnalysis, statement_lines
from kflow.codegen import ModuleContext, NodeFunction, PatternPiece
from kflow.errors import CompileError, Diagnostic
from kflow.layout import too_long
from kflow.parallel import Workers
from kflow.pysource import py_str
from kflow.templating import render

__all__ = ["assemble", "format_source", "with_source_map"]


# A function's place in a formatted piece: first line, last line, each statement's line.
Spans = dict[str, tuple[int, int, list[int]]]


@lru_cache(maxsize=4096)
def _format_piece(source: str) -> tuple[str, Spans] | str:
    """black on one piece, and where its functions' statements landed (read here, in
    the worker, rather than by parsing the whole module afterwards); or, when black
    cannot format it, why (as text: exceptions from a worker may not pickle)."""
    try:
        text = format_source(source).strip("\n")
        return text, _spans(text)
    except Failure as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]


def _spans(text: str) -> Spans:
    return {
        node.name: (node.lineno, node.end_lineno or node.lineno, statement_lines(node))
        for node in ast.parse(text).body
        if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef)
    }


def _render_piece(piece: NodeFunction | PatternPiece, module: ModuleContext) -> str:
    if isinstance(piece, NodeFunction):
        return render("node_function.py.j2", fn=piece)
    return render(piece.template, p=piece.p, rt=module.rt)


def _formatted(results: list[tuple[str, Spans] | str],
               owners: list[NodeFunction | PatternPiece | None]) -> list[tuple[str, Spans]]:
    problems = [
        Diagnostic("KF001", f"node {owner.node_id!r}: its code cannot be formatted ({why})"
                   if isinstance(owner, NodeFunction) else
                   f"a generated piece cannot be formatted ({why})", None,
                   "split long or deeply nested expressions into several statements")
        for result, owner in zip(results, owners, strict=True) if isinstance(result, str)
        for why in (result,)
    ]
    if problems:
        raise CompileError(problems)
    return results  # type: ignore[return-value]


def _ready(piece: NodeFunction | PatternPiece | None, source: str) -> bool:
    """Whether a piece is in black's style already: the header (kflow's own lines, laid
    out by kflow.layout) when no line came out too long; a node function whose body
    black formatted in the analysis, whose def line fits and has no user defaults."""
    if not isinstance(piece, NodeFunction) or piece.code is None or not piece.code.formatted:
        return False
    if any(p.default is not None for p in piece.params):
        return False
    return not too_long(source.split(piece.body, 1)[0])


def _ready_spans(piece: NodeFunction | None, text: str) -> Spans:
    """Where a ready node function's statements are, from the body's own statement lines
    (found in the analysis): no parse of the piece needed."""
    if piece is None or piece.code is None:
        return _spans(text)
    def_line = text.split(piece.body, 1)[0].count("\n")  # the body starts on the next line
    lines = [def_line + n for n in piece.code.body_statement_lines]
    return {piece.name: (def_line, text.count("\n") + 1, lines)}



def assemble(module: ModuleContext, *, workers: Workers | None = None) -> str:
    """The module's source, formatted, with its source map filled in."""
    owners: list[NodeFunction | PatternPiece | None] = [None]
    sources = [render("header.py.j2", module=module)]
    owners += module.resource_functions
    sources += [_render_piece(fn, module) for fn in module.resource_functions]
    if module.uses_resources:
        owners.append(None)
        sources.append(render("resources.py.j2", module=module))
    owners += module.pieces
    sources += [_render_piece(piece, module) for piece in module.pieces]
    todo = [i for i, (owner, source) in enumerate(zip(owners, sources, strict=True))
            if not (_ready(owner, source) if i else not too_long(source))]
    workers = workers or Workers(1)
    done = _formatted(workers.map(_format_piece, [sources[i] for i in todo]),
                      [owners[i] for i in todo])
    pieces: list[tuple[str, Spans]] = []
    formatted = dict(zip(todo, done, strict=True))
    for i, source in enumerate(sources):
        if i in formatted:
            pieces.append(formatted[i])
        else:
            text = source.strip("\n")
            owner = owners[i]
            pieces.append((text, _ready_spans(owner if isinstance(owner, NodeFunction)
                                              else None, text)))
    runner = render("runner.py.j2", module=module)
    if too_long(runner):
        pieces += _formatted([_format_piece(runner)], [None])
    else:
        pieces.append((runner.strip("\n"), {}))
    pieces.append((render("footer.py.j2", module=module).strip("\n"), {}))
    functions = {
        fn.name: fn.code
        for fn in (*module.resource_functions, *module.pieces)
        if isinstance(fn, NodeFunction) and fn.code is not None
    }
    entries: dict[str, str] = {}
    line = 1
    for text, spans in pieces:
        for name, (start, end, lines) in spans.items():
            if name in functions:
                entries[name] = _entry(line - 1, start, end, lines, functions[name])
        line += text.count("\n") + 3  # the piece's lines, then two blank lines
    formatted = "\n\n\n".join(text for text, _ in pieces) + "\n"
    return with_source_map(formatted, module.source_file, entries, module.rt)


def _entry(offset: int, start: int, end: int, lines: list[int], code: CodeAnalysis) -> str:
    """ "first-last module:user module:user ..." for one function (see SourceMap)."""
    pairs = sorted(zip((offset + n for n in lines), code.statement_lines, strict=False))
    if code.expression_lines:  # lines inside multi-line statements (the statement's first)
        known = {g for g, _ in pairs}
        extra = {offset + lines[i] + delta: user for i, delta, user in code.expression_lines
                 if i < len(lines)}
        pairs = sorted([*pairs, *((g, u) for g, u in extra.items() if g not in known)])
    # Where the code can end without its `result`, so that failure names that line.
    ends = [f"end:{','.join(map(str, code.unset_ends))}"] if code.unset_ends else []
    return " ".join([f"{offset + start}-{offset + end}", *(f"{g}:{u}" for g, u in pairs),
                     *ends])


def with_source_map(formatted: str, source_file: str, entries: dict[str, str],
                    rt: str = "rt") -> str:
    """Fill in the module's `SOURCE_MAP = rt.SourceMap(...)` placeholder, the last thing
    before the `__main__` block, so filling it moves no line above it."""
    # rindex: the placeholder follows all user code, which may contain the same text.
    start = formatted.rindex(f"SOURCE_MAP = {rt}.SourceMap(")
    end = formatted.index("\n", start)
    table = render("source_map.py.j2", source_file=source_file, entries=entries, rt=rt)
    if not py_str(source_file).startswith('"'):
        table = format_source(table)  # a file name with quotes: let black choose
    return formatted[:start] + table.rstrip("\n") + formatted[end:]
