"""The Jinja environment that renders `templates/`.

The repo's `templates/` folder installs as the package `kflow.templates`, and
templates are read from it with `importlib.resources`: an installed wheel finds
them without the repository around it, and a user's own `templates` package
cannot stand in for them.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from typing import Any

import jinja2

from kflow.layout import layout
from kflow.pysource import RUNTIME_ALIAS, comment_text, docstring_text, py, py_str


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_template_source),
        autoescape=False,  # noqa: S701 - we emit Python, not HTML; values go through `py`
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["rt"] = RUNTIME_ALIAS
    env.filters.update(
        pyrepr=py,
        pystr=py_str,
        commentline=comment_text,
        docline=docstring_text,
        layout_call=layout,
    )
    return env


def _template_source(name: str) -> str:
    try:
        return files("kflow.templates").joinpath(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise jinja2.TemplateNotFound(name) from None


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)
