"""Cache-aside helpers: key from a template, JSON values in Redis with a TTL.

`cache` is any redis.asyncio.Redis-like client (`get`, `set(..., px=)`); redis itself is not
imported here, so a module that caches only needs the driver it already uses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..observe import emit
from ._errors import PatternError


class CacheKeyError(KeyError, PatternError):
    """A cache key template names a field the inputs do not have."""

    def __init__(self, template: str, field: object, available: list[str]) -> None:
        names = ", ".join(available) or "(none)"
        message = f"cache key template {template!r} needs {field!r}; available: {names}"
        super().__init__(message)
        self.message = message
        self.template = template
        self.field = field
        self.available = available

    def __str__(self) -> str:
        return self.message  # KeyError would show the repr of the message


def cache_key(template: str, values: Mapping[str, Any]) -> str:
    """`template.format_map(values)`, e.g. `"user_{user_id}"`; a missing field raises
    CacheKeyError naming it and the names that exist (a positional `{}`, ValueError)."""
    try:
        return template.format_map(values)
    except KeyError as exc:
        raise CacheKeyError(template, exc.args[0], sorted(map(str, values))) from None


async def cache_get(cache: Any, key: str) -> tuple[bool, Any]:
    """(True, value) on a hit, the value JSON-decoded; (False, None) on a miss."""
    raw = await cache.get(key)
    # The key is not recorded: it is often made of user data (user_{email}).
    if raw is None:
        emit("kflow.cache.miss", {})
        return False, None
    emit("kflow.cache.hit", {})
    return True, json.loads(raw)


async def cache_set(cache: Any, key: str, value: Any, ttl_seconds: float | None) -> Any:
    """Store `value` as JSON (datetimes, decimals and the like as `str`) for `ttl_seconds`,
    or without expiry when it is None. Returns the value as a later hit will read it, so
    a miss and a hit hand the same types downstream."""
    if ttl_seconds is not None and not ttl_seconds > 0:
        raise ValueError(f"ttl_seconds must be None or > 0, got {ttl_seconds!r}")
    data = json.dumps(value, default=str)
    if ttl_seconds is None:
        await cache.set(key, data)
    else:
        # Milliseconds, so a fractional TTL is kept; at least 1 ms, which Redis requires.
        await cache.set(key, data, px=max(1, round(ttl_seconds * 1000)))
    return json.loads(data)
