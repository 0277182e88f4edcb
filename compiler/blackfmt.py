"""black, as kflowc runs it: one mode, and a function body formatted on its own.

A node function's body is the user's code; black formats it in the worker that
analysed it (`format_body`), so the piece that holds it needs no black pass of its own
when kflowc's header lines (comment, def line) are already in black's style. The golden
tests and the property tests check that black leaves every whole module unchanged.
"""

from __future__ import annotations

import black

# String normalization off (black -S): the user's own quotes stay as written, and it
# halves black's time, which is most of a large build. kflow's own literals are
# written with double quotes already.
MODE = black.Mode(target_versions={black.TargetVersion.PY311}, string_normalization=False)

_DEF = "async def _():\n"


def format_source(source: str) -> str:
    return black.format_str(source, mode=MODE)


def format_body(body: str) -> str | None:
    """`body` (indented as a function body) as black formats it inside a function, or
    None where the body's form depends on its def line (black joined it to it)."""
    formatted = format_source(_DEF + body + "\n")
    if not formatted.startswith(_DEF):
        return None
    return formatted[len(_DEF):].rstrip("\n")


Failure = (black.InvalidInput, RecursionError, MemoryError, SyntaxError)


def format_bodies(bodies: list[str]) -> list[str | None]:
    """`format_body` of many bodies with one black call (black costs about half a
    millisecond a call on top of its work per line, and formats each top-level function
    on its own): the bodies go in as functions `_kflow_body_<i>` and come out split at
    their def lines. None for a body this cannot do (the caller formats it alone, so any
    error is that body's own)."""
    marker = "async def _kflow_body_"
    if any(marker in body for body in bodies):
        return [None] * len(bodies)
    source = "\n\n".join(f"{marker}{i}():\n{body}\n" for i, body in enumerate(bodies))
    try:
        formatted = format_source(source)
    except Failure:
        return [None] * len(bodies)
    parts = formatted.split(marker)[1:]
    if len(parts) != len(bodies):
        return [None] * len(bodies)
    out: list[str | None] = []
    for i, part in enumerate(parts):
        head = f"{i}():\n"
        out.append(part[len(head):].rstrip("\n") if part.startswith(head) else None)
    return out
