"""What ``add_resource_node`` runs: one operation on one resource, with a plain result.

The rules per kind are written for users in docs/resources.md ("Resource nodes").
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from kflow_runtime.redact import mask

__all__ = ["DB_OPERATIONS", "resource_operation"]

DB_OPERATIONS = frozenset({"fetch", "fetchrow", "fetchval", "execute", "executemany"})


async def resource_operation(obj: Any, kind: str, operation: str, params: Mapping[str, Any]) -> Any:
    """Run ``operation`` on the resource object ``obj`` of ``kind`` and return a plain value.

    - ``"http"``: ``operation`` is the method; returns ``{"status", "headers", "body"}``.
    - ``"cache"``: ``obj.<operation>(*params["args"], **params["kwargs"])``.
    - ``"database"``, and any other kind given a ``"query"`` (an injected mock, say):
      ``obj.<operation>(query, *params["params"])`` with bound parameters; records -> dicts.
    - any other kind without a ``"query"``: called like a cache operation.
    """
    params = params or {}
    if kind == "http":
        return await _http(obj, operation, params)
    if kind == "database" or (kind != "cache" and "query" in params):
        return await _database(obj, operation, params)
    return await _call_method(obj, operation, params)


def _method(obj: Any, operation: str) -> Any:
    if not isinstance(operation, str) or not operation.isidentifier() or operation.startswith("_"):
        raise ValueError(f"operation must be a public method name, got {operation!r}")
    try:
        return getattr(obj, operation)
    except AttributeError:
        raise AttributeError(f"{type(obj).__name__} has no operation {operation!r}") from None


async def _call_method(obj: Any, operation: str, params: Mapping[str, Any]) -> Any:
    result = _method(obj, operation)(*params.get("args", ()), **params.get("kwargs", {}))
    if inspect.isawaitable(result):
        result = await result
    return result


# --------------------------------------------------------------------------- database


async def _database(obj: Any, operation: str, params: Mapping[str, Any]) -> Any:
    if operation not in DB_OPERATIONS:
        raise ValueError(
            f"database operation must be one of {', '.join(sorted(DB_OPERATIONS))}, "
            f"got {operation!r}"
        )
    query = params.get("query")
    if not isinstance(query, str):
        raise ValueError(f"database operation {operation!r} needs params['query'] as a string")
    args = params.get("params") or []
    if isinstance(args, str | bytes) or not isinstance(args, Sequence):
        raise ValueError("params['params'] must be a list of values bound to $1, $2, ...")
    kwargs = {"timeout": params["timeout"]} if "timeout" in params else {}
    method = _method(obj, operation)
    if operation == "executemany":
        # executemany binds each inner list in turn: executemany(query, [[...], [...]]).
        result = await _maybe_await(method(query, args, **kwargs))
    else:
        # Values travel as bound parameters ($1, $2), never inside the query text.
        try:
            result = await _maybe_await(method(query, *args, **kwargs))
        except Exception as exc:
            typed = await _typed_text_args(obj, query, args, exc)
            if typed is None:
                raise
            # The first call failed while encoding its arguments, before anything ran.
            result = await _maybe_await(method(query, *typed, **kwargs))
    if operation == "fetch":
        return [_plain(row) for row in result or []]
    if operation == "fetchrow":
        return None if result is None else _plain(result)
    return result


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


# Parameter types asyncpg takes a str for as it is, and interval, whose Python form
# (timedelta) cannot hold months: text bound to those is never converted.
_LEFT_AS_TEXT = frozenset(
    {"text", "varchar", "bpchar", "char", "name", "unknown", "json", "jsonb", "jsonpath",
     "xml", "citext", "interval"}
)


async def _typed_text_args(
    obj: Any, query: str, args: Sequence[Any], exc: Exception
) -> list[Any] | None:
    """``args`` with text bound to non-text parameters parsed by PostgreSQL, or None.

    The guide binds ``"2024-01-01"`` to ``created_at > $1``; asyncpg wants a ``date`` there
    and refuses the str before sending anything. PostgreSQL itself would read the text as
    a date, so ask it to: ``SELECT $1::text::date`` turns each such value into the Python
    object asyncpg encodes. Only for asyncpg's "invalid input for query argument" error,
    and only when some str argument meets a non-text parameter; otherwise None.
    """
    if not any(isinstance(a, str) for a in args) or not _is_bind_error(exc):
        return None
    acquire = getattr(obj, "acquire", None)
    if callable(acquire):
        async with acquire() as conn:
            return await _parse_text_args(conn, query, args)
    if callable(getattr(obj, "prepare", None)):
        return await _parse_text_args(obj, query, args)
    return None


def _is_bind_error(exc: Exception) -> bool:
    asyncpg = sys.modules.get("asyncpg")
    return (
        asyncpg is not None
        and isinstance(exc, asyncpg.DataError)
        and "invalid input for query argument" in str(exc)
    )


async def _parse_text_args(conn: Any, query: str, args: Sequence[Any]) -> list[Any] | None:
    types = (await conn.prepare(query)).get_parameters()
    casts: list[tuple[int, str]] = []
    for index, (value, pg_type) in enumerate(zip(args, types, strict=False)):
        base = pg_type.name[:-2] if pg_type.kind == "array" else pg_type.name
        if isinstance(value, str) and base not in _LEFT_AS_TEXT:
            target = f"{_ident(pg_type.schema)}.{_ident(base)}"
            casts.append((index, target + "[]" if pg_type.kind == "array" else target))
    if not casts:
        return None
    select = ", ".join(f"${n}::text::{target}" for n, (_, target) in enumerate(casts, 1))
    # PostgreSQL's own parser: an invalid value fails here with its message
    # ("invalid input syntax for type date: ..."), naming the type.
    parsed = await conn.fetchrow(f"SELECT {select}", *(args[i] for i, _ in casts))
    typed = list(args)
    for position, (index, _) in enumerate(casts):
        typed[index] = parsed[position]
    return typed


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _plain(row: Any) -> Any:
    """An asyncpg Record (or any dict-like row) as a dict; anything else unchanged."""
    if isinstance(row, dict):
        return dict(row)
    if hasattr(row, "keys") and hasattr(row, "__getitem__") and not isinstance(row, str | bytes):
        return dict(row.items()) if hasattr(row, "items") else {k: row[k] for k in row.keys()}
    return row


# --------------------------------------------------------------------------- http


@functools.cache
def _http_status_error() -> type[Exception]:
    import aiohttp

    class HttpStatusError(aiohttp.ClientResponseError):
        """A response with status >= 400; still an aiohttp.ClientError for retry policies."""

        def __str__(self) -> str:
            return self.message

    return HttpStatusError


async def _http(obj: Any, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
    kwargs = dict(params)
    url = kwargs.pop("url", None)
    path = kwargs.pop("path", None)
    target = url if url is not None else (path if path is not None else "")
    method = str(operation).upper()
    async with obj.request(method, target, **kwargs) as response:
        if _is_json(response.content_type):
            body: Any = await response.json(content_type=None)
        else:
            body = await response.text()
        if response.status >= 400:
            snippet = body if isinstance(body, str) else repr(body)
            reason = f" {response.reason}" if response.reason else ""
            message = f"{method} {response.url} returned {response.status}{reason}"
            name = getattr(obj, "name", None)
            if isinstance(name, str):
                message += f" (http resource {name!r})"
            if snippet:
                message += f": {snippet[:200]}"
            raise _http_status_error()(
                response.request_info,
                response.history,
                status=response.status,
                message=mask(message),
                headers=response.headers,
            )
        return {"status": response.status, "headers": dict(response.headers), "body": body}


def _is_json(content_type: str | None) -> bool:
    mime = (content_type or "").lower()
    return mime == "application/json" or mime.endswith("+json")
