"""`rt.lazy_import("numpy")`: a module imported when node code first reads one of its
attributes, for modules the code uses without importing them (`np.mean(...)`,
`except aiohttp.ClientError`). A module the run never needs is never imported, and
need not even be installed where the module runs."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    __slots__ = ("_name", "_module")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def _load(self) -> ModuleType:
        if self._module is None:
            try:
                self._module = importlib.import_module(self._name)
            except ImportError as exc:
                raise ImportError(
                    f"node code uses the module {self._name!r}, which is not installed "
                    f"here: pip install {self._name.split('.')[0]}", name=self._name,
                ) from exc
        return self._module

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._load(), attribute)

    def __repr__(self) -> str:
        state = "imported" if self._module is not None else "not imported yet"
        return f"<module {self._name!r} ({state})>"


def lazy_import(name: str) -> LazyModule:
    return LazyModule(name)
