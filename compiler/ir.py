"""The workflow IR: frozen dataclasses, data only.

`AsyncWorkflowBuilder.build()` writes it, every compiler pass reads it, and
`to_json` / `from_json` round-trip it exactly. Source positions travel with the
IR but stay out of equality (`compare=False`), as Jinja and LibCST keep theirs,
so moving a call in workflow.py does not change what the IR means.

Values that come from the user (fallback values, pattern parameters) are frozen
into `FrozenDict` / tuples so a `Workflow` is hashable and cannot be mutated.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any

IR_VERSION = 1


class FrozenDict(Mapping[str, Any]):
    """An immutable, hashable dict for user values inside the IR."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data = dict(data or {})
        self._hash: int | None = None

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(self._data.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._data) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenDict({self._data!r})"


def freeze(value: Any) -> Any:
    """Turn JSON-like user data into its immutable IR form."""
    if isinstance(value, Mapping):
        return FrozenDict({str(k): freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """The plain dict/list form of a frozen value, for emitting and for JSON."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class SecretRef:
    """A resource setting whose value lives in an environment variable, never in source."""

    env: str


@dataclass(frozen=True)
class SourceLocation:
    """Where something was written: one-indexed line, zero-indexed column."""

    file: str
    line: int
    col: int = 0

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


@dataclass(frozen=True)
class RetrySpec:
    max_attempts: int = 3
    initial_delay: float = 1.0
    backoff_factor: float = 2.0
    max_delay: float = 60.0
    # Dotted names ("aiohttp.ClientError", "ValueError"); resolved by the analyser.
    retry_exceptions: tuple[str, ...] = ("Exception",)


@dataclass(frozen=True)
class ErrorHandlerSpec:
    kind: str  # "fallback" | "ignore" | "log" | "custom"
    fallback_value: Any = None
    code: CodeBlock | None = None


@dataclass(frozen=True)
class NodeOptions:
    timeout: float | None = 30.0
    retry: RetrySpec | None = None
    error_handler: ErrorHandlerSpec | None = None
    required_resources: tuple[str, ...] = ()
    description: str | None = None


@dataclass(frozen=True)
class Node:
    id: str
    kind: str  # "code", "resource", "parallel_map", or a pattern name
    code: CodeBlock | None = None
    options: NodeOptions = NodeOptions()
    # Pattern-specific parameters, frozen (see `freeze`).
    params: FrozenDict = field(default_factory=FrozenDict)
    location: SourceLocation | None = field(default=None, compare=False)
    # Further named code strings of a pattern (parallel_fetch's operations, a fallback).
    codes: tuple[tuple[str, CodeBlock], ...] = ()


@dataclass(frozen=True)
class Connection:
    source: str
    path: tuple[str, ...]  # keys walked from the source's output; () is the whole output
    target: str
    input: str
    location: SourceLocation | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Resource:
    name: str
    kind: str  # "database" | "http" | "cache" | "custom" | "injected"
    settings: FrozenDict = field(default_factory=FrozenDict)
    location: SourceLocation | None = field(default=None, compare=False)
    # A custom resource's inlined callables by role ("factory", "cleanup", "health_check").
    codes: tuple[tuple[str, CodeBlock], ...] = ()


@dataclass(frozen=True)
class Workflow:
    name: str
    nodes: tuple[Node, ...] = ()
    connections: tuple[Connection, ...] = ()
    resources: tuple[Resource, ...] = ()
    description: str | None = None
    source_file: str | None = field(default=None, compare=False)

    def node(self, node_id: str) -> Node:
        return self._by_id[node_id]

    @cached_property
    def _by_id(self) -> dict[str, Node]:
        # Derived once per workflow (cached_property writes the instance dict, which a
        # frozen dataclass allows); not a field, so not in equality or JSON.
        return {node.id: node for node in self.nodes}

    def to_json(self) -> str:
        return json.dumps(_encode(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Workflow:
        data = json.loads(text)
        version = data.pop("ir_version", IR_VERSION)
        if version != IR_VERSION:
            raise ValueError(f"IR version {version} is not supported (expected {IR_VERSION})")
        return _decode(cls, data)


_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        SourceLocation,
        CodeBlock,
        RetrySpec,
        ErrorHandlerSpec,
        NodeOptions,
        Node,
        Connection,
        Resource,
    )
}

# Field name -> IR class, for decoding nested dataclasses without type tags.
_NESTED: dict[str, type] = {
    "origin": SourceLocation,
    "location": SourceLocation,
    "code": CodeBlock,
    "retry": RetrySpec,
    "error_handler": ErrorHandlerSpec,
    "options": NodeOptions,
}
_SEQUENCES: dict[str, type] = {"nodes": Node, "connections": Connection, "resources": Resource}


def _encode(obj: Any) -> Any:
    if hasattr(obj, "__dataclass_fields__") and not isinstance(obj, SecretRef):
        out = {f.name: _encode(getattr(obj, f.name)) for f in fields(obj)}
        if isinstance(obj, Workflow):
            out["ir_version"] = IR_VERSION
        return out
    if isinstance(obj, SecretRef):
        return {"__secret__": obj.env}
    if isinstance(obj, Mapping):
        return {"__frozendict__": {k: _encode(v) for k, v in obj.items()}}
    if isinstance(obj, tuple):
        return [_encode(v) for v in obj]
    return obj


def _decode_value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in _NESTED and isinstance(value, dict):
        return _decode(_NESTED[name], value)
    if name in _SEQUENCES:
        return tuple(_decode(_SEQUENCES[name], v) for v in value)
    if name == "codes":
        return tuple((key, _decode(CodeBlock, block)) for key, block in value)
    return _decode_plain(value)


def _decode_plain(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__secret__"}:
            return SecretRef(value["__secret__"])
        if set(value) == {"__frozendict__"}:
            return FrozenDict({k: _decode_plain(v) for k, v in value["__frozendict__"].items()})
        return {k: _decode_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_decode_plain(v) for v in value)
    return value


def _decode(cls: type, data: dict[str, Any]) -> Any:
    return cls(**{name: _decode_value(name, value) for name, value in data.items()})
