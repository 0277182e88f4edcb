"""Values to JSON text and back, and the hash that ties a resumed run to its inputs.

The JSON-safe rendering is the caller's (`dumps`, the envelope's); this module only decides
whether a value survives the trip: ``json.loads(dumps(value)) == value``. A value that does
not (a datetime rendered as a string, a tuple become a list, an asyncpg Record) is stored
for display but is not restored: its node re-runs on resume.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from itertools import chain, compress, repeat
from math import isfinite
from operator import is_
from typing import Any

Dumps = Callable[[Any], str]

_fast_dumps: Callable[[Any], bytes] | None
try:
    from orjson import dumps as _fast_dumps
except ImportError:  # an optional speed-up: the stdlib encoder does the same, slower
    _fast_dumps = None


def plain_dumps(value: Any) -> str:
    """The default rendering: strict JSON (a value it cannot render is not stored)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode(value: Any, dumps: Dumps) -> tuple[str | None, bool]:
    """``(text, exact)``: the rendering (None if `dumps` failed) and whether it round-trips.

    Plain JSON values (see `_plain`) are rendered by orjson when it is installed
    (kflow-runtime[durable]): the same JSON 10-20x faster than the stdlib encoder, which is
    what a map of 100,000 small results costs a durable run (docs/durable.md). Anything
    else, and anything orjson refuses (an int beyond 64 bits, a lone surrogate), is `dumps`'s.
    """
    plain = _plain(value)
    if plain and (text := _fast(value)) is not None:
        return text, True
    text = _slow(value, dumps)
    if text is None:
        return None, False
    return text, _exact(text, value, plain)


def render(value: Any, dumps: Dumps) -> str | None:
    """`value` as JSON text (None if it cannot be rendered), exact or not: `encode`'s text,
    without the parse that tells whether it round-trips."""
    if _plain(value) and (text := _fast(value)) is not None:
        return text
    return _slow(value, dumps)


def _fast(value: Any) -> str | None:
    """A plain value rendered by orjson; None without orjson or if it refuses the value."""
    if _fast_dumps is None:
        return None
    try:
        data = _fast_dumps(value)
    except TypeError:  # orjson.JSONEncodeError
        return None
    # orjson writes NaN and infinities as null: only a text with a null can hide one.
    if b"null" in data and not _plain(value, finite=True):
        return None
    return data.decode("utf-8")


def _slow(value: Any, dumps: Dumps) -> str | None:
    try:
        return dumps(value)
    except (TypeError, ValueError, RecursionError):
        return None


def round_trips(text: str, value: Any) -> bool:
    return _exact(text, value, _plain(value))


def _exact(text: str, value: Any, plain: bool) -> bool:
    # The envelope's rendering writes NaN and infinities as strings, which would come back
    # as strings: a plain value is exact only if its text cannot hold one, or it has none.
    if plain and (("NaN" not in text and "Infinity" not in text)
                  or _plain(value, finite=True)):
        return True
    try:
        return bool(json.loads(text) == value)
    except Exception:  # noqa: BLE001 - a value whose == misbehaves (numpy) does not round-trip
        return False


_SCALARS = frozenset({str, int, bool, type(None)})
_LEAVES = _SCALARS | {float}
_ALLOWED = _LEAVES | {dict, list}
_KEY = {str}


def _plain(value: Any, *, finite: bool = False) -> bool:
    """Made only of dict (str keys), list, str, int, bool, None and float (`finite`: and no
    NaN or infinity): JSON gives those back as they were. Checked a level at a time with
    C-level iteration (type sets, itertools.chain and compress), several times cheaper than
    parsing the text back; anything else (a tuple, a subclass, a datetime) takes the parse."""
    kind = type(value)
    if kind is list:
        level = value  # read only: no copy of a long list of results
    elif kind is dict:
        if set(map(type, value)) - _KEY:
            return False
        level = list(value.values())
    else:
        level = [value]
    while level:
        types = set(map(type, level))
        if not types <= _ALLOWED:
            return False
        if finite and _not_finite(level, types):
            return False
        if types <= _LEAVES:
            return True
        dicts = _only(dict, level, types)
        if set(map(type, chain.from_iterable(dicts))) - _KEY:
            return False
        lists = _only(list, level, types)
        if len(lists) <= _FEW:
            lists = [items for items in lists if not _long_and_flat(items, finite)]
        level = [*chain.from_iterable(map(dict.values, dicts)), *chain.from_iterable(lists)]
    return True


# A level with at most _FEW lists looks at each long one alone: a long list of results (a
# map's, a query's) is usually all leaves, and is then done with, not copied into the next
# level beside dicts that would make that level's filters walk it again.
_FEW = 64
_LONG = 1024


def _long_and_flat(items: list[Any], finite: bool) -> bool:
    if len(items) < _LONG:
        return False
    types = set(map(type, items))
    return types <= _LEAVES and not (finite and _not_finite(items, types))


def _not_finite(level: list[Any], types: set[type]) -> bool:
    """True if a float of `level` (whose item types are `types`) is NaN or infinite."""
    return float in types and not all(map(isfinite, _only(float, level, types)))


def _only(kind: type, level: list[Any], types: set[type]) -> list[Any]:
    """The items of `level` of type `kind`, filtered in C (a comprehension costs twice as
    much on a level of 100,000 results)."""
    if kind not in types:
        return []
    if len(types) == 1:
        return level
    return list(compress(level, map(is_, map(type, level), repeat(kind))))


def inputs_hash(inputs: Any, dumps: Dumps | None = None) -> str:
    """sha256 of the inputs as canonical JSON: key order and spacing do not matter."""
    text = (dumps or _lenient_dumps)(inputs)
    canonical = json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _lenient_dumps(value: Any) -> str:
    return json.dumps(value, default=repr, ensure_ascii=False)
