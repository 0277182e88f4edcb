"""Make an envelope JSON-safe for printing: whatever the nodes returned, it prints.

Conversions that lose nothing a reader needs happen silently: asyncpg records and other
mappings become objects; tuples, sets and numpy arrays arrays; numpy and pandas scalars
numbers (`np.int64(3)` -> `3`); a pandas DataFrame an array of row objects; datetimes ISO
strings; decimals and UUIDs strings; bytes base64. What JSON cannot hold is rendered, and
marked by angle brackets as Python's own reprs are: a container that contains itself is
`"<cycle: list shown above>"`, an object without a JSON form `"<Point: Point(x=1)>"`, one
whose `repr()` raises `"<Bad: repr() raised ValueError: ...>"`, nesting past MAX_DEPTH
`"<nested deeper than 200 levels>"`. Dict keys that are not strings become their `repr()`
(`{(1, 2): 3}` -> `{"(1, 2)": 3}`). NaN and infinities, which JSON lacks, are the strings
`"NaN"`, `"Infinity"`, `"-Infinity"` (protobuf's JSON mapping spells them so).

The common case pays nothing extra: the C encoder runs first, and only if it refuses the
value (a cycle, a NaN, a tuple key) is the whole value walked and rendered.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import decimal
import json
import math
import sys
import uuid
from collections.abc import Mapping
from typing import Any

MAX_DEPTH = 200  # well inside Python's recursion limit, far beyond any sane output
_MAX_REPR = 1000  # characters of a rendered repr
_MAX_INT_BITS = 10_000  # int -> str refuses past 4300 digits (sys.int_info.str_digits_check_threshold)


def json_default(value: Any) -> Any:
    """`json.dumps(default=...)`: a JSON form for a value the encoder does not know."""
    numeric = _numpy_pandas(value)
    if numeric is not _NOTHING:
        return numeric
    if isinstance(value, Mapping):  # asyncpg.Record is a Mapping
        return dict(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        # A string keeps every digit; a float would silently round money.
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, set | frozenset):
        return _sorted_if_possible(value)
    if isinstance(value, tuple):
        return list(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # One level only (asdict would recurse into a cycle): the encoder walks the rest.
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    if hasattr(value, "items") and callable(value.items):
        try:
            return dict(value.items())
        except Exception:  # noqa: BLE001 - an odd object: fall through to its repr
            pass
    return _rendered(value)


def to_json(envelope: Mapping[str, Any], *, indent: int | None = 2) -> str:
    """The envelope as JSON text; never raises for what the nodes returned."""
    try:
        return json.dumps(envelope, default=json_default, indent=indent, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        # A cycle, a NaN, a non-string key, an int too long to print, or very deep nesting.
        return json.dumps(json_safe(envelope), indent=indent, allow_nan=False)


def json_safe(value: Any) -> Any:
    """`value` as plain JSON types (dict with str keys, list, str, int, float, bool, None)."""
    return _safe(value, 0, set())


# --------------------------------------------------------------------------- the walk

_NOTHING: Any = object()


def _safe(value: Any, depth: int, active: set[int]) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if value.bit_length() > _MAX_INT_BITS:
            return f"<int of {value.bit_length()} bits>"
        return int(value)
    if isinstance(value, float):
        return _float(value)
    if depth >= MAX_DEPTH:
        return f"<nested deeper than {MAX_DEPTH} levels>"
    if id(value) in active:
        return f"<cycle: {type(value).__name__} shown above>"
    if isinstance(value, dict | list | tuple | set | frozenset | Mapping):
        active.add(id(value))
        try:
            if isinstance(value, Mapping):
                return {_key(k): _safe(v, depth + 1, active) for k, v in _items(value)}
            if isinstance(value, set | frozenset):
                value = _sorted_if_possible(value)
            return [_safe(v, depth + 1, active) for v in value]
        finally:
            active.discard(id(value))
    converted = json_default(value)
    if isinstance(converted, str):
        return converted
    # A form that may hold more values (a dataclass's dict, an array's list): walk it too,
    # with this object on the path so that a cycle through it is caught.
    active.add(id(value))
    try:
        return _safe(converted, depth + 1, active)
    finally:
        active.discard(id(value))


def _items(mapping: Mapping[Any, Any]) -> list[tuple[Any, Any]]:
    try:
        return list(mapping.items())
    except Exception as exc:  # noqa: BLE001 - a broken mapping still prints
        return [("<items() raised>", f"{type(exc).__name__}: {exc}")]


def _key(key: Any) -> str:
    """A dict key as JSON writes it: str as is; int, float, bool, None as json.dumps would."""
    if isinstance(key, str):
        return key
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int) and key.bit_length() <= _MAX_INT_BITS:
        return str(int(key))
    if isinstance(key, float):
        return str(_float(key))
    return _repr(key)


def _float(value: float) -> float | str:
    if math.isfinite(value):
        return float(value)
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _sorted_if_possible(values: set[Any] | frozenset[Any]) -> list[Any]:
    try:
        return sorted(values)  # the same set prints the same way every time
    except TypeError:
        return list(values)


def _repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # noqa: BLE001 - the object's own bug must not stop the print
        return f"<{type(value).__qualname__}: repr() raised {type(exc).__name__}: {exc}>"
    if len(text) > _MAX_REPR:
        text = text[: _MAX_REPR - 3] + "..."
    return text


def _rendered(value: Any) -> str:
    """An object without a JSON form, marked as such (unless its repr already is)."""
    text = _repr(value)
    if text.startswith("<") and text.endswith(">"):
        return text
    return f"<{type(value).__qualname__}: {text}>"


def _numpy_pandas(value: Any) -> Any:
    """numpy and pandas values as JSON numbers and arrays; _NOTHING for anything else.

    Neither library is imported here: a value of theirs exists only if they are loaded.
    """
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, np.generic):
            item = value.item()  # int, float, bool, complex, datetime, bytes, str
            return _numpy_pandas_scalar(item)
    pd = sys.modules.get("pandas")
    if pd is not None:
        if isinstance(value, pd.DataFrame):
            return value.to_dict(orient="records")
        if isinstance(value, pd.Series):
            if isinstance(value.index, pd.RangeIndex):
                return value.tolist()
            return {_key(k): v for k, v in value.items()}
        if isinstance(value, pd.Index):
            return value.tolist()
        if value is pd.NaT or value is pd.NA:
            return None
    return _NOTHING


def _numpy_pandas_scalar(item: Any) -> Any:
    if isinstance(item, complex):
        return [item.real, item.imag]
    if isinstance(item, datetime.datetime | datetime.date | datetime.timedelta):
        return json_default(item)
    return item
