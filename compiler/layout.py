"""Lay out the code kflowc writes itself exactly as black would, without running black.

black costs about a millisecond per statement; a 1,000-node workflow would spend
most of its build formatting `ctx.call(...)` lines whose shape we know. So the
runner is written in black's own style: a call or collection stays on one line
when it fits, and otherwise puts one item per line with a magic trailing comma
(a form black keeps as it is), laying each item out the same way. The golden
tests check that black leaves every generated module unchanged, and
`kflow.format` still hands a piece to black if a line ends up too long.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from black.strings import str_width

from kflow.pysource import Code
from kflow.pysource import literal as value_literal

LINE_LENGTH = 88
INDENT = "    "

# Text that is already Python source (a name, an expression): written as is.
Source = Code


@dataclass(frozen=True)
class Call:
    """`function(*args, **kwargs)` with values laid out by this module."""

    function: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = field(default=())


def literal(value: Any) -> Code:
    """A value as black writes it on one line: calls and source as they are, containers
    item by item, every other value through the one checked `pysource.literal`."""
    if isinstance(value, Code):
        return value
    if isinstance(value, Call):
        parts = [literal(a) for a in value.args] + [f"{k}={literal(v)}" for k, v in value.kwargs]
        return Code(f"{value.function}({', '.join(parts)})")
    if isinstance(value, tuple):
        if len(value) == 1:
            return Code(f"({literal(value[0])},)")
        return Code("(" + ", ".join(literal(v) for v in value) + ")")
    if isinstance(value, list):
        return Code("[" + ", ".join(literal(v) for v in value) + "]")
    if isinstance(value, Mapping):
        return Code("{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items())
                    + "}")
    return value_literal(value)


def _explodable(value: Any) -> bool:
    if isinstance(value, Call):
        return bool(value.args or value.kwargs)
    return isinstance(value, tuple | list | Mapping) and not isinstance(value, Code) and bool(
        value
    )


def layout(value: Any, depth: int, prefix: str = "", suffix: str = "") -> Code:
    """`prefix + value + suffix` starting at `depth`, exploded while it does not fit."""
    flat = literal(value)
    # Measured as black measures: East Asian wide characters are two columns.
    if (len(INDENT * depth) + str_width(prefix) + str_width(flat) + str_width(suffix)
            <= LINE_LENGTH or not _explodable(value)):
        return Code(prefix + flat)
    if isinstance(value, Call):
        open_, close = f"{value.function}(", ")"
        items = [layout(a, depth + 1, suffix=",") for a in value.args]
        items += [layout(v, depth + 1, prefix=f"{k}=", suffix=",") for k, v in value.kwargs]
    elif isinstance(value, Mapping):
        open_, close = "{", "}"
        items = [layout(v, depth + 1, prefix=f"{literal(k)}: ", suffix=",")
                 for k, v in value.items()]
    else:
        open_, close = ("(", ")") if isinstance(value, tuple) else ("[", "]")
        items = [layout(v, depth + 1, suffix=",") for v in value]
    inner = INDENT * (depth + 1)
    body = "".join(f"{inner}{item},\n" for item in items)
    return Code(f"{prefix}{open_}\n{body}{INDENT * depth}{close}")


def too_long(text: str) -> bool:
    """Whether black might change a line of `text`: one over the line length that is not a
    comment (black never rewraps a comment)."""
    return any(str_width(line) > LINE_LENGTH and not line.lstrip().startswith("#")
               for line in text.splitlines())


