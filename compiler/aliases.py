"""The guide's own imports (`from kailash.workflow import AsyncWorkflowBuilder`) for kflow.

The guide's examples import from `kailash`. Where the real Kailash SDK is not
installed, a finder placed *last* on `sys.meta_path` answers `kailash` and its
submodules with modules holding kflow's public API. Being last, it can never
shadow a real `kailash`: Python's own path finder, ahead of it, finds that first.

It is cheap to install: nothing of kflow is imported until code reads an
attribute of a `kailash` module. The pytest plugin (`kflow.pytest_plugin`)
installs it for a test session and `python -m kflow script.py` for a script;
`kflowc` puts it first while it runs a workflow file (`kailash_aliases`).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Iterator, Sequence
from typing import Any

# The guide's module names (and Kailash's, for code moving over from it); each holds all
# of kflow's public API.
MODULES = frozenset({
    "kailash",
    "kailash.workflow",
    "kailash.workflow.builder",
    "kailash.workflow.async_builder",
    "kailash.workflow.async_patterns",
    "kailash.runtime",
    "kailash.runtime.local",
    "kailash.runtime.async_local",
    "kailash.resources",
})


def _api() -> dict[str, Any]:
    import kflow
    from kflow.builder import AsyncWorkflowBuilder
    from kflow.runtime import AsyncLocalRuntime

    names: dict[str, Any] = {name: getattr(kflow, name) for name in kflow.__all__}
    # Kailash's synchronous names, which the guide's first lines import.
    names.update(LocalRuntime=AsyncLocalRuntime, WorkflowBuilder=AsyncWorkflowBuilder)
    return names


def _module_getattr(name: str) -> Any:
    api = _api()
    if name in api:
        return api[name]
    raise AttributeError(f"kflow's kailash module has no attribute {name!r} (kflow provides "
                         f"{', '.join(sorted(api))})")


class KailashFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds `kailash.*` (see MODULES) when nothing earlier on sys.meta_path does."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: Any = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MODULES:
            return None
        return importlib.util.spec_from_loader(fullname, self, is_package=True)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = types.ModuleType(spec.name, "kflow's stand-in for the Kailash SDK's module")
        module.__getattr__ = _module_getattr  # type: ignore[attr-defined]  # PEP 562
        module.__kflow_alias__ = True  # type: ignore[attr-defined]
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        module.__path__ = []  # a package, so its submodules import


_FINDER = KailashFinder()


def kailash_is_real() -> bool:
    """Whether `import kailash` finds the real Kailash SDK (checked without importing it)."""
    loaded = sys.modules.get("kailash")
    if loaded is not None:
        return not getattr(loaded, "__kflow_alias__", False)
    installed = _FINDER in sys.meta_path
    if installed:
        sys.meta_path.remove(_FINDER)
    try:
        return importlib.util.find_spec("kailash") is not None
    finally:
        if installed:
            sys.meta_path.append(_FINDER)


def install() -> bool:
    """Let `kailash.*` imports give kflow's API; returns whether this call installed it."""
    if _FINDER in sys.meta_path:
        return False
    sys.meta_path.append(_FINDER)
    return True


def uninstall() -> None:
    """Remove the finder and forget the stand-in modules it made."""
    with contextlib.suppress(ValueError):
        sys.meta_path.remove(_FINDER)
    for name in MODULES:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__kflow_alias__", False):
            del sys.modules[name]


@contextlib.contextmanager
def kailash_aliases() -> Iterator[None]:
    """kflow's API as `kailash.*` for the duration of a `with` block, even where the real
    Kailash SDK is installed: kflowc compiles a workflow file written for the guide's
    imports with kflow's builder. Whatever `kailash` modules were loaded come back after."""
    saved = {name: module for name, module in sys.modules.items()
             if name == "kailash" or name.startswith("kailash.")}
    for name in saved:
        del sys.modules[name]
    sys.meta_path.insert(0, _FINDER)
    try:
        yield
    finally:
        sys.meta_path.remove(_FINDER)
        for name in [n for n in sys.modules if n == "kailash" or n.startswith("kailash.")]:
            del sys.modules[name]
        sys.modules.update(saved)
