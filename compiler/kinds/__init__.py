"""The node kinds, one module each, and the registry that finds them.

Every module here whose name does not start with `_` is a kind module: it defines
`KINDS` (the `Kind` objects it provides; a pattern that adds several nodes, such as
cache-aside, provides several) and, for a pattern users call on `AsyncPatterns`,
`PATTERNS` (name -> authoring function). The registry imports them on first use, so
adding a pattern touches its own module and its template, nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from kflow.kinds._base import CodeRole, Kind, NoParams
from kflow.values import BadValue, did_you_mean

__all__ = ["CodeRole", "Kind", "NoParams", "kind_named", "kinds", "patterns"]


@lru_cache(maxsize=1)
def _modules() -> tuple[Any, ...]:
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    return tuple(importlib.import_module(f"{__name__}.{name}") for name in names)


@lru_cache(maxsize=1)
def kinds() -> dict[str, Kind]:
    """Every node kind by its IR name."""
    found: dict[str, Kind] = {}
    for module in _modules():
        for kind in module.KINDS:
            if kind.name in found:
                raise RuntimeError(f"two kind modules define the kind {kind.name!r}")
            found[kind.name] = kind
    return found


def kind_named(name: str) -> Kind:
    registry = kinds()
    kind = registry.get(name) if isinstance(name, str) else None
    if kind is None:
        raise BadValue(f"unknown node kind {name!r}",
                       did_you_mean(str(name), sorted(registry))
                       or f"the kinds are {', '.join(sorted(registry))}")
    return kind


@lru_cache(maxsize=1)
def patterns() -> dict[str, Callable[..., Any]]:
    """The authoring functions of `AsyncPatterns`, by name."""
    found: dict[str, Callable[..., Any]] = {}
    for module in _modules():
        found.update(getattr(module, "PATTERNS", {}))
    return dict(sorted(found.items()))
