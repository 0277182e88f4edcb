"""Assemble the module from formatted pieces, then map its lines back to workflow.py.

black formats what holds user code (each node function, cached by its text) and
the header; the runner is already in black's style (compiler.layout) unless a
line came out too long. Pieces are joined with the two blank lines black puts
between top-level definitions, so the whole module is black-stable.

black moves lines, so the source map is built from the assembled text: black
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

from compiler.analyze import CodeAnalysis, statement_lines
from compiler.codegen import ModuleContext, NodeFunction, PatternPiece
from compiler.layout import too_long
from compiler.pysource import py_str
from compiler.templating import render

# String normalization off (black -S): the user's own quotes stay as written, and it
# halves black's time, which is most of a large build. kflow's own literals are
# written with double quotes already.
MODE = black.Mode(target_versions={black.TargetVersion.PY311}, string_normalization=False)
_PLACEHOLDER = "SOURCE_MAP = SourceMap("


def format_source(source: str) -> str:
    return black.format_str(source, mode=MODE)


@lru_cache(maxsize=4096)
def _format_piece(source: str) -> str:
    return format_source(source).strip("\n")


def _render_piece(piece: NodeFunction | PatternPiece) -> str:
    if isinstance(piece, NodeFunction):
        return render("node_function.py.j2", fn=piece)
    return render(piece.template, p=piece.p)


# Past this many pieces, black runs in a process per core: it is most of a big build.
PARALLEL_FROM = 64


def _format_pieces(sources: list[str]) -> list[str]:
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
    pieces.append(_format_piece(runner) if too_long(runner) else runner.strip("\n"))
    pieces.append(render("footer.py.j2", module=module).strip("\n"))
    formatted = "\n\n\n".join(pieces) + "\n"
    functions = {
        fn.name: fn.code
        for fn in (*module.resource_functions, *module.pieces)
        if isinstance(fn, NodeFunction) and fn.code is not None
    }
    return with_source_map(formatted, module.source_file, functions)


def source_map_entries(formatted: str, functions: dict[str, CodeAnalysis]) -> dict[str, str]:
    """For each node function: "first-last module:user module:user ...".

    A compact string per function keeps the table one short line per node, which
    black leaves as it is (formatting a large nested literal costs seconds).
    """
    entries = {}
    for node in ast.parse(formatted).body:
        if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef) and node.name in functions:
            user_lines = functions[node.name].statement_lines
            pairs = sorted(zip(statement_lines(node), user_lines, strict=False))
            span = f"{node.lineno}-{node.end_lineno or node.lineno}"
            entries[node.name] = " ".join([span, *(f"{gen}:{user}" for gen, user in pairs)])
    return entries


def with_source_map(formatted: str, source_file: str, functions: dict[str, CodeAnalysis]) -> str:
    """Fill in the module's `SOURCE_MAP = SourceMap(...)` placeholder, the last thing
    before the `__main__` block, so filling it moves no line above it."""
    entries = source_map_entries(formatted, functions)
    # rindex: the placeholder follows all user code, which may contain the same text.
    start = formatted.rindex(_PLACEHOLDER)
    end = formatted.index("\n", start)
    table = render("source_map.py.j2", source_file=source_file, entries=entries)
    if not py_str(source_file).startswith('"'):
        table = format_source(table)  # a file name with quotes: let black choose
    return formatted[:start] + table.rstrip("\n") + formatted[end:]
