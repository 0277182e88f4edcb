"""Format the generated module with black, then map its lines back to workflow.py.

black moves lines, so the source map is built from the formatted text: black
keeps the AST, so the statements of each node function, walked in the same
order as the analyser walked the user's code, pair up one to one.
"""

from __future__ import annotations

import ast

import black

from compiler.analyze import CodeAnalysis, statement_lines
from compiler.pysource import py

MODE = black.Mode(target_versions={black.TargetVersion.PY311})
_PLACEHOLDER = "SOURCE_MAP = SourceMap("


def format_source(source: str) -> str:
    return black.format_str(source, mode=MODE)


def source_map_entries(
    formatted: str, functions: dict[str, CodeAnalysis]
) -> dict[str, tuple[int, int, tuple[tuple[int, int], ...]]]:
    """For each node function: (first line, last line, ((module line, user line), ...))."""
    entries = {}
    for node in ast.parse(formatted).body:
        if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef) and node.name in functions:
            user_lines = functions[node.name].statement_lines
            module_lines = statement_lines(node)
            pairs = tuple(sorted(zip(module_lines, user_lines, strict=False)))
            entries[node.name] = (node.lineno, node.end_lineno or node.lineno, pairs)
    return entries


def with_source_map(formatted: str, source_file: str, functions: dict[str, CodeAnalysis]) -> str:
    """Fill in the module's `SOURCE_MAP = SourceMap(...)` placeholder, the last thing
    before the `__main__` block, so filling it moves no line above it."""
    entries = source_map_entries(formatted, functions)
    start = formatted.rindex(_PLACEHOLDER)  # after all user code, which may contain the text
    end = formatted.index("\n", start)
    table = format_source(f"SOURCE_MAP = SourceMap({py(source_file)}, {py(entries)})\n")
    return formatted[:start] + table.rstrip("\n") + formatted[end:]
