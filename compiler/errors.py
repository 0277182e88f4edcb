"""Compile-time diagnostics.

One error type formats every problem the same way, like Jinja's
`TemplateSyntaxError`: `file:line:col: message`, the offending source line with
a caret under the column, and a hint saying how to fix it. `kflowc` prints it
and exits 2; it never shows a traceback from inside kflow.
"""

from __future__ import annotations

import linecache
from collections.abc import Sequence
from dataclasses import dataclass

from kflow.ir import SourceLocation


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    location: SourceLocation | None = None
    hint: str | None = None
    severity: str = "error"  # "error" | "warning" | "info"

    def format(self) -> str:
        where = f"{self.location}: " if self.location else ""
        lines = [f"{where}{self.severity} {self.code}: {self.message}"]
        source = _source_line(self.location)
        if source is not None:
            text, caret = source
            lines.append(f"    {text}")
            lines.append(f"    {caret}")
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


def _source_line(location: SourceLocation | None) -> tuple[str, str] | None:
    if location is None:
        return None
    text = linecache.getline(location.file, location.line).rstrip("\n")
    if not text.strip():
        return None
    stripped = text.lstrip()
    indent = len(text) - len(stripped)
    col = min(max(location.col - indent, 0), len(stripped))
    if len(stripped) > _WIDTH:  # a long line (a one-line JSON file): the part around col
        start = max(0, min(col - _WIDTH // 2, len(stripped) - _WIDTH))
        stripped, col = stripped[start:start + _WIDTH], col - start
    return stripped, " " * col + "^"


_WIDTH = 100


class KflowError(Exception):
    """Base of every error kflow raises on purpose."""


class CompileError(KflowError):
    """One or more diagnostics that stop a build."""

    def __init__(self, diagnostics: Sequence[Diagnostic] | Diagnostic) -> None:
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics = tuple(diagnostics)
        super().__init__(self.format())

    def format(self) -> str:
        return "\n".join(d.format() for d in self.diagnostics)


def error(
    code: str, message: str, location: SourceLocation | None = None, hint: str | None = None
) -> CompileError:
    return CompileError(Diagnostic(code, message, location, hint))
