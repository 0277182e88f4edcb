"""What a node contributes to the module: data the templates render.

A node kind's `emit` returns an `Emitted`: module-level pieces in order (functions
holding user code, and pattern pieces rendered from `templates/patterns/<kind>.py.j2`),
the function `ctx.call` runs, wires the pattern adds, and call options it sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kflow.pysource import Code, Ident

if TYPE_CHECKING:
    from kflow.code_analysis import CodeAnalysis


@dataclass
class Param:
    name: Ident
    default: Code | None = None


@dataclass
class NodeFunction:
    """A function holding user code (or a resource operation), rendered by
    templates/node_function.py.j2; functions with `code` get a source-map entry."""

    node_id: str
    name: Ident
    kind: str
    location: str | None
    description: str | None
    params: list[Param]
    body: Code
    code: CodeAnalysis | None = None
    title: str = ""
    is_async: bool = True
    decorator: Code | None = None


@dataclass
class PatternPiece:
    """Module-level code a pattern adds around its code functions (a wrapper, its
    shared state), rendered by templates/patterns/<kind>.py.j2 with `p`."""

    template: str
    p: dict[str, Any]


@dataclass
class Emitted:
    """What one node contributes: pieces in order, the function `ctx.call` runs, wires
    the pattern adds (input, source node, path; path None: the source's recovered error),
    and options it sets on the call."""

    pieces: list[NodeFunction | PatternPiece]
    entry: Ident
    wires: tuple[tuple[str, str, tuple[str, ...] | None], ...] = ()
    call_options: dict[str, Any] = field(default_factory=dict)
