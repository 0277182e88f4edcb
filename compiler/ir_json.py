"""The IR as JSON: written by `kflowc build --emit-ir`, read back by `kflowc build ir.json`.

Reading trusts nothing: the file may be hand-edited, truncated or hostile. Every object
is checked for its fields, decoded into the IR class (whose `__post_init__` checks the
values; a node's `params` go through its kind's `Params`), and the graph is validated as
the builder's is. Any problem is one `CompileError` naming the file, the line of the
offending object and the path to the field (`nodes[2].params.max_workers`), exit 2.
"""

from __future__ import annotations

import json
import json.scanner
from collections.abc import Callable
from dataclasses import MISSING, fields, is_dataclass
from typing import Any

from kflow.errors import CompileError, Diagnostic, error
from kflow.ir import (
    IR_VERSION,
    CodeBlock,
    Connection,
    EnvRef,
    ErrorHandlerSpec,
    Node,
    NodeOptions,
    Resource,
    SecretRef,
    SourceLocation,
    Workflow,
)
from kflow.values import BadValue, Params, did_you_mean, thaw
from kflow_runtime.patterns.retry import RetryPolicy, RetryPolicyError

CODE = "KF024"


def encode(obj: Any) -> Any:
    if isinstance(obj, Params):
        return obj.to_json()
    if isinstance(obj, SecretRef):
        return {"__secret__": obj.env}
    if isinstance(obj, EnvRef):
        return {"__env__": obj.env, "default": obj.default}
    if is_dataclass(obj):
        out = {f.name: encode(getattr(obj, f.name)) for f in fields(obj)}
        if isinstance(obj, Workflow):
            out["ir_version"] = IR_VERSION
        return out
    if isinstance(obj, dict) or hasattr(obj, "items"):
        return {k: encode(v) for k, v in obj.items()}
    if isinstance(obj, tuple | list):
        return [encode(v) for v in obj]
    return obj


Path = tuple[str | int, ...]


class _Problem(Exception):
    def __init__(self, path: Path, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.path, self.message, self.hint = path, message, hint


def decode(text: str, file: str) -> Workflow:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(CODE, f"{file} is not valid JSON: {exc.msg}",
                    SourceLocation(file, exc.lineno, max(exc.colno - 1, 0)),
                    "an IR file is what `kflowc build workflow.py --emit-ir ir.json` writes"
                    ) from None
    except (RecursionError, ValueError) as exc:
        raise error(CODE, f"{file} cannot be read as JSON: {exc}", SourceLocation(file, 1),
                    "an IR file is what `kflowc build workflow.py --emit-ir ir.json` writes"
                    ) from None
    try:
        workflow = _read(data)
    except _Problem as problem:
        where = _describe(data, problem.path)
        raise error(CODE, f"{file}: {where}: {problem.message}",
                    SourceLocation(file, *_position(text, problem.path)),
                    problem.hint or "fix the IR file, or rebuild it from workflow.py with "
                    "`kflowc build workflow.py --emit-ir`") from None
    from kflow import graph

    try:
        graph.validate(workflow)
    except CompileError as exc:
        raise CompileError([_in_file(d, file) for d in exc.diagnostics]) from None
    return workflow


def _in_file(diagnostic: Diagnostic, file: str) -> Diagnostic:
    if diagnostic.location is not None:
        return diagnostic
    return Diagnostic(diagnostic.code, f"{file}: {diagnostic.message}", SourceLocation(file, 1),
                      diagnostic.hint, diagnostic.severity)


def _describe(data: Any, path: Path) -> str:
    """`nodes[2] ('fetch').params.max_workers`: the path, with node ids where known."""
    out, value = "", data
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            value = None
        if isinstance(part, int) and isinstance(value, dict) and isinstance(value.get("id"), str):
            out += f" ({value['id']!r})"
    return out or "the file"


def _read(data: Any) -> Workflow:
    if not isinstance(data, dict):
        raise _Problem((), f"an IR file holds one JSON object, not a {_json_type(data)}")
    if "ir_version" not in data:
        raise _Problem((), "no ir_version: this is not a kflow IR file")
    version = data["ir_version"]
    if version != IR_VERSION:
        raise _Problem(("ir_version",), f"IR version {version!r} is not supported (this kflowc "
                       f"reads version {IR_VERSION})",
                       "rebuild the IR with this kflowc: `kflowc build workflow.py --emit-ir`")
    body = {k: v for k, v in data.items() if k != "ir_version"}
    return _object(Workflow, body, (), {
        "nodes": _list(_node),
        "connections": _list(lambda v, p: _object(Connection, v, p, {
            "path": _strings, "location": _location})),
        "resources": _list(lambda v, p: _object(Resource, v, p, {
            "settings": _settings, "location": _location, "codes": _codes})),
    })


Reader = Callable[[Any, Path], Any]


def _object(cls: type, data: Any, path: Path, readers: dict[str, Reader]) -> Any:
    if not isinstance(data, dict):
        raise _Problem(path, f"expected an object for {cls.__name__}, not a {_json_type(data)}")
    known = [f.name for f in fields(cls)]
    for key in data:
        if key not in known:
            raise _Problem(path + (key,), f"unknown field {key!r} of {cls.__name__}",
                           did_you_mean(key, known))
    for f in fields(cls):
        if f.name not in data and f.default is MISSING and f.default_factory is MISSING:
            raise _Problem(path, f"{cls.__name__} is missing its field {f.name!r}")
    values = {
        key: (readers[key](value, path + (key,)) if key in readers and value is not None
              else _plain(value))
        for key, value in data.items()
    }
    return _build(cls, values, path)


def _build(cls: Callable[..., Any], values: dict[str, Any], path: Path) -> Any:
    try:
        return cls(**values)
    except (BadValue, RetryPolicyError) as exc:
        raise _Problem(path, exc.message, exc.hint) from None
    except CompileError as exc:
        raise _Problem(path, exc.diagnostics[0].message, exc.diagnostics[0].hint) from None
    except TypeError as exc:
        raise _Problem(path, f"bad fields for {getattr(cls, '__name__', cls)}: {exc}") from None


def _plain(value: Any) -> Any:
    """Any JSON value in IR form: lists become tuples (the IR's dataclasses check the rest)."""
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _list(item: Reader) -> Reader:
    def read(value: Any, path: Path) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise _Problem(path, f"expected a list, not a {_json_type(value)}")
        return tuple(item(v, path + (i,)) for i, v in enumerate(value))
    return read


def _strings(value: Any, path: Path) -> tuple[Any, ...]:
    if not isinstance(value, list):
        raise _Problem(path, f"expected a list of strings, not a {_json_type(value)}")
    return tuple(value)


def _location(value: Any, path: Path) -> SourceLocation:
    return _object(SourceLocation, value, path, {})


def _block(value: Any, path: Path) -> CodeBlock:
    return _object(CodeBlock, value, path, {"origin": _location})


def _codes(value: Any, path: Path) -> tuple[tuple[str, CodeBlock], ...]:
    if not isinstance(value, list):
        raise _Problem(path, f"expected a list of [name, code] pairs, not a {_json_type(value)}")
    out = []
    for i, pair in enumerate(value):
        if not (isinstance(pair, list) and len(pair) == 2):
            raise _Problem(path + (i,), "expected a [name, code] pair")
        out.append((pair[0], _block(pair[1], path + (i, 1))))
    return tuple(out)


def _settings(value: Any, path: Path) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__secret__"}:
            return _build(SecretRef, {"env": value["__secret__"]}, path)
        if set(value) == {"__env__", "default"}:
            return _build(EnvRef, {"env": value["__env__"], "default": value["default"]}, path)
        return {k: _settings(v, path + (k,)) for k, v in value.items()}
    if isinstance(value, list):
        return [_settings(v, path + (i,)) for i, v in enumerate(value)]
    return value


def _retry(value: Any, path: Path) -> RetryPolicy:
    if not isinstance(value, dict):
        raise _Problem(path, f"expected an object for the retry policy, not a "
                       f"{_json_type(value)}")
    return _build(RetryPolicy, {k: _plain(v) for k, v in value.items()}, path)


def _options(value: Any, path: Path) -> NodeOptions:
    return _object(NodeOptions, value, path, {
        "retry": _retry,
        "required_resources": _strings,
        "error_handler": lambda v, p: _object(ErrorHandlerSpec, v, p, {
            "code": _block, "fallback_value": lambda x, _: x}),
    })


def _node(value: Any, path: Path) -> Node:
    from kflow.kinds import kind_named

    kind = value.get("kind") if isinstance(value, dict) else None
    try:
        params_cls = kind_named(kind).Params if isinstance(kind, str) else None
    except BadValue as exc:
        raise _Problem(path + ("kind",), exc.message, exc.hint) from None

    def params(raw: Any, where: Path) -> Params:
        if params_cls is None:
            raise _Problem(where, "a node needs a kind")
        try:
            return params_cls.from_json(raw)
        except BadValue as exc:
            raise _Problem(where, exc.message, exc.hint) from None
        except TypeError as exc:
            raise _Problem(where, str(exc)) from None

    return _object(Node, value, path, {
        "code": _block, "options": _options, "params": params, "location": _location,
        "codes": _codes,
    })


def _json_type(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", int: "number",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


# -- where a path is in the text ----------------------------------------------------------


def _position(text: str, path: Path) -> tuple[int, int]:
    """(line, column) of the JSON value at `path`: the file is parsed again, keeping the
    offset where each object and list starts (only when there is an error to place)."""
    starts: dict[int, int] = {}
    decoder = json.JSONDecoder()
    parse_object, parse_array = decoder.parse_object, decoder.parse_array

    def on_object(s_and_end: tuple[str, int], *args: Any) -> tuple[Any, int]:
        value, end = parse_object(s_and_end, *args)
        starts[id(value)] = s_and_end[1] - 1
        return value, end

    def on_array(s_and_end: tuple[str, int], *args: Any) -> tuple[Any, int]:
        value, end = parse_array(s_and_end, *args)
        starts[id(value)] = s_and_end[1] - 1
        return value, end

    decoder.parse_object, decoder.parse_array = on_object, on_array
    decoder.scan_once = json.scanner.py_make_scanner(decoder)
    try:
        value = decoder.decode(text)
    except (ValueError, RecursionError):
        return 1, 0
    offset = starts.get(id(value), 0)
    for part in path:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            break
        offset = starts.get(id(value), offset)
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1)


__all__ = ["decode", "encode", "thaw"]
