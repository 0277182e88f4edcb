"""The Jinja environment that renders `templates/`.

The repo's `templates/` folder installs as the package `kflow.templates`, and
templates are read from it with `importlib.resources`: an installed wheel finds
them without the repository around it, and a user's own `templates` package
cannot stand in for them.

Every `{{ ... }}` passes through `_finalize`, which writes only what `kflow.pysource`
made: `Code` and `Ident` as they are, numbers, booleans and None as checked literals.
A plain string is refused, so a template cannot paste a workflow's text raw: it must say
how (`| pyrepr` for a literal, `| commentline` / `| docline` for text).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from importlib.resources import files
from typing import Any

import jinja2

from kflow.layout import layout
from kflow.pysource import Code, comment_text, docstring_text, literal


class TemplateValueError(TypeError):
    """A template tried to write a value that did not come through kflow.pysource."""


def _finalize(value: Any) -> Code:
    if isinstance(value, Code):
        return value
    if value is None or isinstance(value, bool | int | float):
        return literal(value)
    raise TemplateValueError(
        f"a template tried to write {value!r} ({type(value).__name__}) as it is; "
        "write it through | pyrepr, | commentline or | docline, or make it an Ident"
    )


def signature(params: Iterable[Any]) -> Code:
    """Keyword-only parameters: `*, a, b=1` (each a `Param` of kflow.pieces)."""
    parts = [p.name if p.default is None else f"{p.name}={p.default}" for p in params]
    return Code(f"*, {', '.join(parts)}" if parts else "")


def pass_on(params: Iterable[Any]) -> Code:
    """`a=a, b=b`: a wrapper handing its own parameters on to its code function."""
    return Code(", ".join(f"{p.name}={p.name}" for p in params))


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_template_source),
        autoescape=False,  # noqa: S701 - we emit Python, not HTML; see _finalize
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
    )
    env.filters.update(
        pyrepr=literal,
        commentline=comment_text,
        docline=docstring_text,
        layout_call=layout,
        signature=signature,
        pass_on=pass_on,
    )
    return env


def _template_source(name: str) -> str:
    try:
        return files("kflow.templates").joinpath(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise jinja2.TemplateNotFound(name) from None


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)
