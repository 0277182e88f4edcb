"""Values to JSON text and back, and the hash that ties a resumed run to its inputs.

The JSON-safe rendering is the caller's (`dumps`, the envelope's); this module only decides
whether a value survives the trip: ``json.loads(dumps(value)) == value``. A value that does
not (a datetime rendered as a string, a tuple become a list, an asyncpg Record) is stored
for display but is not restored: its node re-runs on resume.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
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
    try:
        return bool(json.loads(text) == value)
    except Exception:  # noqa: BLE001 - a value whose == misbehaves (numpy) does not round-trip
        return False


def encode_items(results: Sequence[Any], dumps: Dumps) -> tuple[str | None, bool]:
    """One rendering for a list of item results (cheaper than one per item)."""
    return encode(list(results), dumps)


def inputs_hash(inputs: Any, dumps: Dumps | None = None) -> str:
    """sha256 of the inputs as canonical JSON: key order and spacing do not matter."""
    text = (dumps or _lenient_dumps)(inputs)
    canonical = json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _lenient_dumps(value: Any) -> str:
    return json.dumps(value, default=repr, ensure_ascii=False)
