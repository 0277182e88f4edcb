"""Make an envelope JSON-safe for printing: records, datetimes, decimals and friends."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import decimal
import json
import uuid
from collections.abc import Mapping
from typing import Any


def json_default(value: Any) -> Any:
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
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    if hasattr(value, "items") and callable(value.items):
        return dict(value.items())
    return repr(value)


def to_json(envelope: Mapping[str, Any], *, indent: int | None = 2) -> str:
    return json.dumps(envelope, default=json_default, indent=indent, sort_keys=False)
