"""The workflow IR: frozen dataclasses, data only, validated when built.

`AsyncWorkflowBuilder.build()` writes it, every compiler pass reads it, and `to_json` /
`from_json` round-trip it exactly. Every class checks its fields in `__post_init__` (as
LibCST's nodes do), so an IR object is valid however it was made: by the builder, or read
from a JSON file that kflowc must not trust. A node's parameters are its kind's own
`Params` class (`kflow.kinds`), so they are typed and checked too.

Source positions travel with the IR but stay out of equality (`compare=False`), as Jinja
and LibCST keep theirs, so moving a call in workflow.py does not change what the IR means.
Equal IRs hash alike.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from kflow.values import (
    BadValue,
    FrozenDict,
    Params,
    flag,
    freeze,
    identifier,
    identifiers,
    json_value,
    limit,
    nonempty_text,
    optional_text,
    text,
    thaw,
)
from kflow_runtime.patterns.retry import RetryPolicy

__all__ = [
    "IR_VERSION", "ORDER_ONLY", "CodeBlock", "Connection", "EnvRef", "ErrorHandlerSpec",
    "FrozenDict", "Node", "NodeOptions", "Resource", "SecretRef", "SourceLocation", "Workflow",
    "freeze", "thaw",
]

# Version 2: node parameters are typed per kind; retry policies are kflow_runtime's RetryPolicy.
IR_VERSION = 2

# The input name of an edge that only orders two nodes; no code can read it.
ORDER_ONLY = "_kflow_after"

HANDLER_KINDS = ("fallback", "ignore", "log", "custom")
RESOURCE_KINDS = ("database", "http", "cache", "custom", "injected")
RESOURCE_ROLES = ("factory", "health_check", "cleanup")


def _optional(value: Any, cls: type, name: str) -> None:
    if value is not None and not isinstance(value, cls):
        raise BadValue(f"{name} must be a {cls.__name__}, not {type(value).__name__}")


def _setting(value: Any, name: str) -> Any:
    """A resource setting: JSON-like data whose leaves may be secrets."""
    if isinstance(value, SecretRef | EnvRef):
        return value
    if isinstance(value, Mapping):
        return {text(k, f"{name} key") if isinstance(k, str) else _bad_key(k, name):
                _setting(v, f"{name}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_setting(v, f"{name}[{i}]") for i, v in enumerate(value)]
    return thaw(json_value(value, name))


def _bad_key(key: Any, name: str) -> str:
    raise BadValue(f"{name} has a key {key!r} that is not a string")


@dataclass(frozen=True)
class SecretRef:
    """A resource setting whose value lives in an environment variable, never in source."""

    env: str

    def __post_init__(self) -> None:
        identifier(self.env, "secret variable name")


@dataclass(frozen=True)
class EnvRef:
    """A resource setting that workflow.py read with `os.getenv(env, default)`: the
    module reads the same variable when it runs, `default` when it is unset."""

    env: str
    default: str | None = None

    def __post_init__(self) -> None:
        text(self.env, "environment variable name")
        if self.default is not None:
            text(self.default, "environment variable default")


@dataclass(frozen=True)
class SourceLocation:
    """Where something was written: one-indexed line, zero-indexed column."""

    file: str
    line: int
    col: int = 0

    def __post_init__(self) -> None:
        text(self.file, "location file")
        for name in ("line", "col"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise BadValue(f"location {name} must be a whole number >= 0, not {value!r}")

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col + 1}"


@dataclass(frozen=True)
class CodeBlock:
    """A code string from the workflow, with where its first line sits in the file.

    `origin.line` is the file line of the code's first line (the line the string
    literal opens on), so code line k lives at file line `origin.line + k - 1`.
    `exact` is False when the literal could not be found (code built at run
    time); lines then point at the `add_*` call instead.
    """

    text: str
    origin: SourceLocation | None = field(default=None, compare=False)
    exact: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        text(self.text, "code")
        flag(self.exact, "exact")
        _optional(self.origin, SourceLocation, "origin")


@dataclass(frozen=True)
class ErrorHandlerSpec:
    kind: str  # "fallback" | "ignore" | "log" | "custom"
    fallback_value: Any = None
    code: CodeBlock | None = None

    def __post_init__(self) -> None:
        if self.kind not in HANDLER_KINDS:
            raise BadValue(f"error handler kind must be one of {', '.join(HANDLER_KINDS)}, "
                           f"not {self.kind!r}")
        object.__setattr__(self, "fallback_value",
                           json_value(self.fallback_value, "fallback_value"))
        _optional(self.code, CodeBlock, "error handler code")
        if (self.kind == "custom") != (self.code is not None):
            raise BadValue("a custom error handler, and only that, has code")


@dataclass(frozen=True)
class NodeOptions:
    timeout: float | None = 30.0
    retry: RetryPolicy | None = None
    error_handler: ErrorHandlerSpec | None = None
    required_resources: tuple[str, ...] = ()
    description: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "timeout", limit(self.timeout, "timeout"))
        _optional(self.retry, RetryPolicy, "retry policy")
        if self.retry is not None and not all(
            isinstance(e, str) for e in self.retry.retry_exceptions
        ):
            raise BadValue("an IR retry policy names its exceptions (RetryPolicy.named())")
        _optional(self.error_handler, ErrorHandlerSpec, "error handler")
        object.__setattr__(self, "required_resources",
                           identifiers(self.required_resources, "required_resources"))
        optional_text(self.description, "description")


@dataclass(frozen=True)
class Node:
    id: str
    kind: str  # the name of a kind of kflow.kinds (its module says what it means)
    code: CodeBlock | None = None
    options: NodeOptions = NodeOptions()
    # The kind's own Params (None: the kind's defaults).
    params: Params | None = None
    location: SourceLocation | None = field(default=None, compare=False)
    # Further named code strings of a pattern (parallel_fetch's operations).
    codes: tuple[tuple[str, CodeBlock], ...] = ()

    def __post_init__(self) -> None:
        from kflow.kinds import kind_named

        nonempty_text(self.id, "node id")
        kind = kind_named(self.kind)  # BadValue for an unknown kind
        if self.params is None:
            object.__setattr__(self, "params", kind.Params())
        elif type(self.params) is not kind.Params:
            raise BadValue(f"node {self.id!r}: params of a {self.kind} node must be its "
                           f"Params, not {type(self.params).__name__}")
        _optional(self.code, CodeBlock, "code")
        _optional(self.options, NodeOptions, "options")
        _optional(self.location, SourceLocation, "location")
        if not isinstance(self.codes, tuple) or not all(
            isinstance(c, tuple) and len(c) == 2 and isinstance(c[1], CodeBlock)
            for c in self.codes
        ):
            raise BadValue("codes must be (name, CodeBlock) pairs")
        for key, _ in self.codes:
            text(key, "code name")
        kind.check_node(self)


@dataclass(frozen=True)
class Connection:
    source: str
    path: tuple[str, ...]  # keys walked from the source's output; () is the whole output
    target: str
    input: str
    location: SourceLocation | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        nonempty_text(self.source, "connection source")
        nonempty_text(self.target, "connection target")
        if not isinstance(self.path, tuple):
            raise BadValue("connection path must be a list of keys")
        for key in self.path:
            nonempty_text(key, "connection path key")
        if self.input != ORDER_ONLY:
            identifier(self.input, "connection input")
        _optional(self.location, SourceLocation, "location")


@dataclass(frozen=True)
class Resource:
    name: str
    kind: str  # "database" | "http" | "cache" | "custom" | "injected"
    settings: FrozenDict = field(default_factory=FrozenDict)
    location: SourceLocation | None = field(default=None, compare=False)
    # A custom resource's inlined callables by role ("factory", "cleanup", "health_check").
    codes: tuple[tuple[str, CodeBlock], ...] = ()

    def __post_init__(self) -> None:
        identifier(self.name, "resource name")
        if self.kind not in RESOURCE_KINDS:
            raise BadValue(f"resource kind must be one of {', '.join(RESOURCE_KINDS)}, "
                           f"not {self.kind!r}")
        if not isinstance(self.settings, Mapping):
            raise BadValue("resource settings must be a dict")
        object.__setattr__(self, "settings", freeze(
            {text(k, "setting name"): _setting(v, f"resource {self.name!r}: {k}") for k, v in
             self.settings.items()}))
        _optional(self.location, SourceLocation, "location")
        for role, block in self.codes:
            if role not in RESOURCE_ROLES or not isinstance(block, CodeBlock):
                raise BadValue(f"resource code role must be one of {', '.join(RESOURCE_ROLES)}")


@dataclass(frozen=True)
class Workflow:
    name: str
    nodes: tuple[Node, ...] = ()
    connections: tuple[Connection, ...] = ()
    resources: tuple[Resource, ...] = ()
    description: str | None = None
    source_file: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        text(self.name, "workflow name")
        optional_text(self.description, "workflow description")
        for name, cls in (("nodes", Node), ("connections", Connection),
                          ("resources", Resource)):
            items = getattr(self, name)
            if not isinstance(items, tuple) or not all(isinstance(i, cls) for i in items):
                raise BadValue(f"{name} must be a tuple of {cls.__name__}")

    def node(self, node_id: str) -> Node:
        return self._by_id[node_id]

    @cached_property
    def _by_id(self) -> dict[str, Node]:
        # Derived once per workflow (cached_property writes the instance dict, which a
        # frozen dataclass allows); not a field, so not in equality or JSON.
        return {node.id: node for node in self.nodes}

    def to_json(self) -> str:
        from kflow.ir_json import encode

        return json.dumps(encode(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, *, file: str = "<ir>") -> Workflow:
        """Read an IR file, trusting nothing in it: any problem is a located CompileError."""
        from kflow.ir_json import decode

        return decode(text, file)
