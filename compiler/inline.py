"""Inline a Python callable as a code string, with what it needs from its module.

Where the guide passes a function instead of code (`add_parallel_map("p",
process_function)`, `require_resource("r", factory)`), the builder turns it into
a code block at once: the function's own source first (so its lines map back to
the user's file exactly), then the module-level names it uses — helpers and
classes from the same module (recursively), imports, and literal constants —
then `<alias> = <function>`. The IR stays plain data and the generated module
needs nothing from the user's files. What cannot be inlined is a compile error
with a hint.
"""

from __future__ import annotations

import builtins
import inspect
import symtable
import textwrap
import types
from collections.abc import Callable
from typing import Any

from kflow.errors import error
from kflow.ir import CodeBlock, SourceLocation
from kflow.pysource import literal

# Modules a workflow file runs as: names defined there can only be inlined, not imported.
_UNIMPORTABLE = {"__main__", "__kflow_workflow__"}


def _fail(what: str, location: SourceLocation | None, hint: str) -> Exception:
    return error("KF030", what, location, hint)


def _source(obj: Any, location: SourceLocation | None) -> str:
    try:
        return textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        raise _fail(
            f"cannot read the source of {obj!r} to inline it", location,
            "define it with `def` in a .py file (not in a REPL or with exec)",
        ) from None


def _global_names(source: str) -> list[str]:
    """Names the source reads from module scope, in first-use order."""
    table = symtable.symtable(source, "<inline>", "exec")
    assigned = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
    found: dict[str, None] = {}
    stack = [table]
    while stack:
        current = stack.pop(0)
        for symbol in current.get_symbols():
            name = symbol.get_name()
            if symbol.is_referenced() and symbol.is_global() and name not in assigned:
                found[name] = None
        stack.extend(current.get_children())
    return list(found)


def _literal_source(value: Any) -> str | None:
    """The value as a checked literal (kflow.pysource.literal), or None if it has none."""
    try:
        return literal(value)
    except TypeError:
        return None


class _Inliner:
    def __init__(self, root: Callable[..., Any], location: SourceLocation | None) -> None:
        self.module = getattr(root, "__module__", None)
        self.globals: dict[str, Any] = getattr(root, "__globals__", {})
        self.location = location
        self.done: set[str] = set()
        self.pieces: list[str] = []

    def add_dependencies(self, source: str, skip: str) -> None:
        for name in _global_names(source):
            if name in self.done or name == skip:
                continue
            self.done.add(name)
            if name not in self.globals:
                if hasattr(builtins, name):
                    continue
                raise _fail(
                    f"{name!r} is used by the inlined function but not defined in its module",
                    self.location, "define or import it at module level in the same file",
                )
            self.pieces.append(self.define(name, self.globals[name]))

    def define(self, name: str, value: Any) -> str:
        if isinstance(value, types.ModuleType):
            real = value.__name__
            return f"import {real}" if real == name else f"import {real} as {name}"
        owner = getattr(value, "__module__", None)
        if isinstance(value, types.FunctionType | type):
            if value.__module__ == self.module or owner in _UNIMPORTABLE:
                _check_function(value, self.location)
                source = _source(value, self.location)
                self.add_dependencies(source, skip=name)
                if value.__name__ != name:
                    source += f"\n{name} = {value.__name__}\n"
                return source
            qualname = getattr(value, "__qualname__", "")
            if owner and "." not in qualname and "<" not in qualname:
                alias = "" if qualname == name else f" as {name}"
                return f"from {owner} import {qualname}{alias}"
        source = _literal_source(value)
        if source is not None:
            return f"{name} = {source}"
        if callable(value) and owner and owner not in _UNIMPORTABLE:
            qualname = getattr(value, "__qualname__", getattr(value, "__name__", ""))
            if qualname and "." not in qualname:
                alias = "" if qualname == name else f" as {name}"
                return f"from {owner} import {qualname}{alias}"
        raise _fail(
            f"cannot inline module-level name {name!r} ({type(value).__name__}) used by the "
            "function", self.location,
            "use a literal constant, a function or class defined in the same file, or an "
            "import; or pass the value in as a workflow input",
        )


def _check_function(fn: Any, location: SourceLocation | None) -> None:
    if not isinstance(fn, types.FunctionType | type):
        raise _fail(
            f"{fn!r} is not a Python function, so its source cannot be inlined", location,
            "wrap it in a function defined with `def` in your workflow file",
        )
    if getattr(fn, "__name__", "") == "<lambda>":
        raise _fail("a lambda cannot be inlined", location,
                    "define the function with `def` at module level")
    code = getattr(fn, "__code__", None)
    if code is not None and code.co_freevars:
        raise _fail(
            f"{fn.__qualname__} closes over local variables ({', '.join(code.co_freevars)}) "
            "that do not exist in the generated module", location,
            "define the function at module level, or pass those values in as inputs",
        )
    if "<locals>" in getattr(fn, "__qualname__", ""):
        raise _fail(f"{fn.__qualname__} is defined inside a function", location,
                    "define it at module level so its source stands on its own")


def inline_callable(fn: Callable[..., Any], alias: str,
                    location: SourceLocation | None) -> CodeBlock:
    """`fn` and its module-level dependencies as code that defines `alias`."""
    _check_function(fn, location)
    source = _source(fn, location)
    inliner = _Inliner(fn, location)
    inliner.add_dependencies(source, skip=fn.__name__)
    parts = [source.rstrip("\n"), *(p.rstrip("\n") for p in inliner.pieces)]
    if fn.__name__ != alias:
        parts.append(f"{alias} = {fn.__name__}")
    text = "\n\n".join(parts) + "\n"
    try:
        file = inspect.getsourcefile(fn)
        line = inspect.getsourcelines(fn)[1]
    except (OSError, TypeError):
        return CodeBlock(text, location, exact=False)
    return CodeBlock(text, SourceLocation(file or "<unknown>", line, 0), exact=True)
