"""Write workflow values into generated source safely.

Every id, name and string from a workflow reaches the module through one of
these: `py` (a checked `repr`), `comment_text` or `docstring_text`. None of them
can end a comment, a string or a docstring early, so nothing from a workflow
can inject code.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

from kflow.ir import SecretRef, thaw

# The one name a generated module imports the runtime as: `import kflow_runtime as rt`.
RUNTIME_ALIAS = "rt"


def py(value: Any) -> str:
    """Python source for a value the compiler built (tuples stay tuples)."""
    if isinstance(value, SecretRef):
        return f"{RUNTIME_ALIAS}.Secret({py_str(value.env)})"
    if isinstance(value, Mapping):
        value = {k: v for k, v in value.items()}
    return _checked_repr(value)


def py_value(value: Any) -> str:
    """Python source for a user's JSON-like value from the IR (lists come back as lists)."""
    return _checked_repr(thaw(value))


def _literal(value: Any) -> str:
    """A literal in black's style (double quotes), so black has nothing to change."""
    if isinstance(value, str):
        return py_str(value)
    if isinstance(value, tuple):
        inner = ", ".join(_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _checked_repr(value: Any) -> str:
    source = _literal(value)
    try:
        same = ast.literal_eval(source) == value
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        same = False
    if not same:
        raise TypeError(f"{value!r} cannot be written into a module (use JSON-like values)")
    return source


def one_line(text: Any) -> str:
    return " ".join(str(text).splitlines())


def comment_text(text: Any) -> str:
    """Text for a `#` comment: one line, so it cannot spill into code."""
    return one_line(text)


def docstring_text(text: Any) -> str:
    """Text for inside a triple-quoted docstring: no way to close it early."""
    return one_line(text).replace("\\", "\\\\").replace('"', '\\"')


def py_str(text: str) -> str:
    """A string literal as black writes it, for source kflowc lays out without black.

    black prefers double quotes unless they would need more escapes than the
    single-quoted form (see black's `normalize_string_quotes`).
    """
    source = repr(text)
    if source[0] == '"':  # repr chose double quotes: the text has ' and no "
        return source
    body = source[1:-1]
    if '"' not in text:
        return '"' + body + '"'
    if "'" in text:  # both kinds: as many escapes either way, so black picks double
        return '"' + body.replace("\\'", "'").replace('"', '\\"') + '"'
    return source
