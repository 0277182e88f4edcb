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
from itertools import chain
from typing import Any

Dumps = Callable[[Any], str]


def plain_dumps(value: Any) -> str:
    """The default rendering: strict JSON (a value it cannot render is not stored)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode(value: Any, dumps: Dumps) -> tuple[str | None, bool]:
    """``(text, exact)``: the rendering (None if `dumps` failed) and whether it round-trips."""
    try:
        text = dumps(value)
    except (TypeError, ValueError, RecursionError):
        return None, False
    return text, round_trips(text, value)


def round_trips(text: str, value: Any) -> bool:
    if _plain(value):
        return True  # plain JSON types render as standard JSON, whatever `dumps` is
    try:
        return bool(json.loads(text) == value)
    except Exception:  # noqa: BLE001 - a value whose == misbehaves (numpy) does not round-trip
        return False


_SCALARS = frozenset({str, int, bool, type(None)})
_LEAVES = _SCALARS | {float}
_ALLOWED = _LEAVES | {dict, list}
_KEY = {str}


def _plain(value: Any) -> bool:
    """Made only of dict (str keys), list, str, int, bool, None and float: JSON gives those
    back as they were (NaN and infinities too, where `dumps` writes them at all). Checked a
    level at a time with C-level iteration (type sets, itertools.chain), several times
    cheaper than parsing the text back; anything else (a tuple, a subclass, a datetime)
    takes the parse."""
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
        if types <= _LEAVES:
            return True
        dicts = level if types == {dict} else [v for v in level if type(v) is dict]
        lists = level if types == {list} else [v for v in level if type(v) is list]
        if dicts and set(map(type, chain.from_iterable(dicts))) - _KEY:
            return False
        level = [*chain.from_iterable(map(dict.values, dicts)), *chain.from_iterable(lists)]
    return True


def inputs_hash(inputs: Any, dumps: Dumps | None = None) -> str:
    """sha256 of the inputs as canonical JSON: key order and spacing do not matter."""
    text = (dumps or _lenient_dumps)(inputs)
    canonical = json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _lenient_dumps(value: Any) -> str:
    return json.dumps(value, default=repr, ensure_ascii=False)
