"""The Jinja environment that renders `templates/`.

Templates ship inside the `templates` package, so an installed wheel finds them
without the repository around it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2

from compiler.layout import layout
from compiler.pysource import comment_text, docstring_text, py, py_str


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("templates", ""),
        autoescape=False,  # noqa: S701 - we emit Python, not HTML; values go through `py`
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        pyrepr=py,
        pystr=py_str,
        commentline=comment_text,
        docline=docstring_text,
        layout_call=layout,
    )
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)
