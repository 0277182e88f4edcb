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
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache

import black

from kflow.analyze import CodeAnalysis, statement_lines
from kflow.codegen import ModuleContext, NodeFunction, PatternPiece
from kflow.layout import too_long
from kflow.pysource import RUNTIME_ALIAS, py_str
from kflow.templating import render

# String normalization off (black -S): the user's own quotes stay as written, and it
# halves black's time, which is most of a large build. kflow's own literals are
# written with double quotes already.
MODE = black.Mode(target_versions={black.TargetVersion.PY311}, string_normalization=False)
_PLACEHOLDER = f"SOURCE_MAP = {RUNTIME_ALIAS}.SourceMap("


def format_source(source: str) -> str:
    return black.format_str(source, mode=MODE)


# A function's place in a formatted piece: first line, last line, each statement's line.
Spans = dict[str, tuple[int, int, list[int]]]


@lru_cache(maxsize=4096)
def _format_piece(source: str) -> tuple[str, Spans]:
    """black on one piece, and where its functions' statements landed (read here, in
    the worker, rather than by parsing the whole module afterwards)."""
    text = format_source(source).strip("\n")
    return text, _spans(text)


def _spans(text: str) -> Spans:
    return {
        node.name: (node.lineno, node.end_lineno or node.lineno, statement_lines(node))
        for node in ast.parse(text).body
        if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef)
    }


def _render_piece(piece: NodeFunction | PatternPiece) -> str:
    if isinstance(piece, NodeFunction):
        return render("node_function.py.j2", fn=piece)
    return render(piece.template, p=piece.p)


# Past this many pieces, black runs in a process per core: it is most of a big build.
PARALLEL_FROM = 64


def _format_pieces(sources: list[str]) -> list[tuple[str, Spans]]:
    if len(sources) < PARALLEL_FROM or (os.cpu_count() or 1) < 2:
        return [_format_piece(source) for source in sources]
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=os.cpu_count(), mp_context=context) as pool:
        return list(pool.map(_format_piece, sources, chunksize=32))


def assemble(module: ModuleContext) -> str:
    """The module's source, formatted, with its source map filled in."""
    sources = [render("header.py.j2", module=module)]
    sources += [_render_piece(fn) for fn in module.resource_functions]
    if module.uses_resources:
        sources.append(render("resources.py.j2", module=module))
    sources += [_render_piece(piece) for piece in module.pieces]
    pieces = _format_pieces(sources)
    runner = render("runner.py.j2", module=module)
    pieces.append(_format_piece(runner) if too_long(runner) else (runner.strip("\n"), {}))
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
    return with_source_map(formatted, module.source_file, entries)


def _entry(offset: int, start: int, end: int, lines: list[int], code: CodeAnalysis) -> str:
    """ "first-last module:user module:user ..." for one function (see SourceMap)."""
    pairs = sorted(zip((offset + n for n in lines), code.statement_lines, strict=False))
    return " ".join([f"{offset + start}-{offset + end}", *(f"{g}:{u}" for g, u in pairs)])


def with_source_map(formatted: str, source_file: str, entries: dict[str, str]) -> str:
    """Fill in the module's `SOURCE_MAP = rt.SourceMap(...)` placeholder, the last thing
    before the `__main__` block, so filling it moves no line above it."""
    # rindex: the placeholder follows all user code, which may contain the same text.
    start = formatted.rindex(_PLACEHOLDER)
    end = formatted.index("\n", start)
    table = render("source_map.py.j2", source_file=source_file, entries=entries)
    if not py_str(source_file).startswith('"'):
        table = format_source(table)  # a file name with quotes: let black choose
    return formatted[:start] + table.rstrip("\n") + formatted[end:]
