"""Configuration read from the environment while workflow.py runs stays configuration.

The guide's "Production Deployment" writes `host=os.getenv("DB_HOST", "localhost")`.
kflowc runs workflow.py to build the workflow, so without help the value the build
machine had would be baked into the module. While the loader runs the file,
`os.getenv` and `os.environ.get` return the value as an `EnvStr`: a `str` that remembers
the variable and the default it was read with. A resource setting that receives one
becomes an `EnvRef` in the IR, and the module reads that same variable when the
resource opens (`rt.Env("DB_HOST", "localhost")`, `KFLOW_DB_HOST` still winning).

A value transformed on its way (`int(os.getenv("MAX_WORKERS", "10"))`) is a plain value
by the time it reaches the builder: the read is reported (KF112) with where the value
seems to have gone and what changes it at run time, if anything.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kflow.errors import Diagnostic
from kflow.ir import EnvRef, Node, SourceLocation, Workflow

_MISSING: Any = object()


@dataclass(eq=False)
class Read:
    """One `os.getenv(var, default)` while the workflow file ran."""

    var: str
    default: Any
    value: Any
    location: SourceLocation | None
    used: bool = False  # it reached a resource setting as it was read


class EnvStr(str):
    """A string read from the environment, with the read it came from."""

    read: Read

    def __new__(cls, value: str, read: Read) -> EnvStr:
        made = super().__new__(cls, value)
        made.read = read
        return made


@dataclass
class _Tracking:
    reads: list[Read] = field(default_factory=list)


_ACTIVE: list[_Tracking] = []


def _caller() -> SourceLocation | None:
    """Where workflow.py called os.getenv: the line, and the call's column (3.11 positions)."""
    from kflow.locate import _position

    frame = sys._getframe(2)
    if frame is None:
        return None
    line, col = _position(frame.f_code, frame.f_lasti)
    return SourceLocation(frame.f_code.co_filename, line or frame.f_lineno or 1, col or 0)


def _tracked(var: Any, default: Any, value: Any, location: SourceLocation | None) -> Any:
    if not _ACTIVE or not isinstance(var, str):
        return value
    read = Read(var, None if default is _MISSING else default, value, location)
    _ACTIVE[-1].reads.append(read)
    return EnvStr(value, read) if isinstance(value, str) else value


@contextmanager
def tracking() -> Iterator[list[Read]]:
    """While the workflow file runs: `os.getenv` / `os.environ.get` record their reads."""
    original_getenv = os.getenv
    environ = os.environ
    original_get = type(environ).get

    def getenv(key: Any, default: Any = None) -> Any:
        return _tracked(key, default, original_get(environ, key, default), _caller())

    def get(key: Any, default: Any = None) -> Any:
        return _tracked(key, default, original_get(environ, key, default), _caller())

    state = _Tracking()
    _ACTIVE.append(state)
    previous = vars(environ).get("get")  # an enclosing tracking()'s, if any
    os.getenv = getenv
    environ.get = get  # type: ignore[method-assign]
    try:
        yield state.reads
    finally:
        os.getenv = original_getenv
        if previous is None:
            vars(environ).pop("get", None)
        else:
            environ.get = previous  # type: ignore[method-assign]
        _ACTIVE.remove(state)


def env_refs(value: Any) -> Any:
    """Settings with every `EnvStr` leaf made an `EnvRef` (its read marked used)."""
    if isinstance(value, EnvStr):
        value.read.used = True
        default = value.read.default
        return EnvRef(str(value.read.var), None if default is None else str(default))
    if isinstance(value, Mapping):
        return {k: env_refs(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(env_refs(v) for v in value)
    return value


def unused_reads(reads: list[Read], workflow: Workflow) -> list[Diagnostic]:
    """KF112 for each read whose value did not reach a resource setting as it was read."""
    found = []
    seen: set[str] = set()
    for read in reads:
        if read.used or read.var in seen or not any(r.var == read.var and not r.used
                                                   for r in reads):
            continue
        if any(r.used for r in reads if r.var == read.var):
            continue
        seen.add(read.var)
        place = _where_it_went(read.value, workflow)
        call = f"os.getenv({read.var!r})"
        if place is None:
            continue  # not in the workflow at all (a path, a log level): nothing to say
        what, override = place
        hint = (f"set {override} when the module runs to change it there" if override else
                "nothing changes it when the module runs: rebuild with the variable set, or "
                "pass the value as it is read (without converting it) to a resource setting")
        found.append(Diagnostic(
            "KF112", f"{what} came from {call} converted while building: the module "
            f"keeps the build-time value ({read.value!r}), and {read.var} is not read when "
            "it runs", read.location, hint, severity="warning",
        ))
    return found


def _converted(text: Any) -> list[Any]:
    if not isinstance(text, str):
        return []
    out: list[Any] = []
    for convert in (int, float):
        try:
            out.append(convert(text))
        except ValueError:
            pass
    if text.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        out.append(text.strip().lower() in ("true", "1", "yes"))
    return out


def _where_it_went(value: Any, workflow: Workflow) -> tuple[str, str | None] | None:
    """Where a converted form of `value` sits: (what, the KFLOW_* variable overriding it)."""
    from kflow_runtime.resources import env_name

    forms = _converted(value)
    if not forms:
        return None
    for resource in workflow.resources:
        for setting, current in resource.settings.items():
            if not isinstance(current, str) and any(
                    current == f and type(current) is type(f) for f in forms):
                return (f"resource {resource.name!r} setting {setting!r}",
                        env_name(resource.name, setting))
    for node in workflow.nodes:
        place = _in_node(node, forms)
        if place is not None:
            return place, None
    return None


def _in_node(node: Node, forms: list[Any]) -> str | None:
    import dataclasses

    params = node.params
    if params is not None and dataclasses.is_dataclass(params):
        for f in dataclasses.fields(params):
            current = getattr(params, f.name)
            if any(current == x and type(current) is type(x) for x in forms):
                return f"node {node.id!r}: {f.name}={current!r}"
    timeout = node.options.timeout
    if timeout is not None and any(timeout == x and not isinstance(x, bool) for x in forms):
        return f"node {node.id!r}: timeout={timeout!r}"
    return None
