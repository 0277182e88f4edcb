"""How anything from a workflow reaches the generated source: the only ways in.

- `literal(value)`: a value (str, number, bool, None, and tuples, lists, dicts of them)
  as a Python literal, in black's style, *checked*: the text is parsed back and must
  give the same value, so no string can end early and nothing but a literal comes out.
- `Ident`: a name, checked to be an identifier (and not a keyword) when made; the scope
  (`kflow.scope`) makes every generated one, and user names pass the same check.
- `comment_text` / `docstring_text`: text for one comment line or inside a docstring,
  that cannot close either early.

Templates write only these (`Code` and `Ident` pass through; anything else is refused,
see `kflow.templating`), so no id, name or value from a workflow can inject code.
"""

from __future__ import annotations

import ast
import keyword
import math
import unicodedata
from collections.abc import Mapping
from functools import lru_cache
from typing import Any


class Code(str):
    """Python source kflow produced (a checked literal, a laid-out call, a function body)."""


class Ident(Code):
    """An identifier, checked when made."""

    def __new__(cls, name: str) -> Ident:
        if (not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name)
                or unicodedata.normalize("NFKC", name) != name):
            raise ValueError(f"{name!r} is not a usable Python name")
        return super().__new__(cls, name)


def literal(value: Any) -> Code:
    """`value` as a Python literal in black's style (double quotes), checked by parsing it
    back. Raises TypeError for anything that is not a plain literal value."""
    if type(value) is str:  # most values are (node ids, names), and the same ones recur
        return _string(value)
    return _checked(value)


@lru_cache(maxsize=8192)
def _string(value: str) -> Code:
    return _checked(value)


def _checked(value: Any) -> Code:
    source = _literal(value)
    try:
        same = _same(ast.literal_eval(source), value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        same = False
    if not same:
        raise TypeError(f"{_short(value)} cannot be written into a module "
                        "(use str, finite numbers, bool, None, lists and dicts)")
    return Code(source)


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return py_str(value)
    if value is None or isinstance(value, bool | int | bytes):
        return repr(value)
    if isinstance(value, complex):
        if not (math.isfinite(value.real) and math.isfinite(value.imag)):
            raise TypeError(f"{value!r} cannot be written into a module (no literal for it)")
        return repr(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{value!r} cannot be written into a module (no literal for it)")
        return repr(value)
    if isinstance(value, tuple):
        inner = ", ".join(_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"{_short(value)} ({type(value).__name__}) cannot be written into a module")


def _same(read: Any, value: Any) -> bool:
    """Equal and of the same shape (a Mapping reads back as a dict)."""
    if isinstance(value, Mapping):
        return isinstance(read, dict) and len(read) == len(value) and all(
            k in read and _same(read[k], v) for k, v in value.items())
    if isinstance(value, tuple | list):
        return (type(read) is type(value) and len(read) == len(value)
                and all(_same(r, v) for r, v in zip(read, value, strict=True)))
    if isinstance(value, str):
        return isinstance(read, str) and read == value
    return type(read) is type(value) and read == value


def _short(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def one_line(text: Any) -> str:
    return " ".join(str(text).splitlines())


def comment_text(text: Any) -> Code:
    """Text for a `#` comment: one line, so it cannot spill into code (and no trailing
    blanks, which black would strip)."""
    return Code(one_line(text).rstrip())


def docstring_text(text: Any) -> Code:
    """Text for inside a triple-quoted docstring: no way to close it early (and no
    trailing blanks, which black would strip)."""
    line = one_line(text).replace("\t", " ").rstrip()  # black expands tabs in docstrings
    return Code(line.replace("\\", "\\\\").replace('"', '\\"'))


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
