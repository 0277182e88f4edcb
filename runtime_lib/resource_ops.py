"""What ``add_resource_node`` runs: one operation on one resource, with a plain result.

The rules per kind are written for users in docs/resources.md ("Resource nodes").
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

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
        result = method(query, args, **kwargs)
    else:
        # Values travel as bound parameters ($1, $2), never inside the query text.
        result = method(query, *args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    if operation == "fetch":
        return [_plain(row) for row in result or []]
    if operation == "fetchrow":
        return None if result is None else _plain(result)
    return result


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
            if snippet:
                message += f": {snippet[:200]}"
            raise _http_status_error()(
                response.request_info,
                response.history,
                status=response.status,
                message=message,
                headers=response.headers,
            )
        return {"status": response.status, "headers": dict(response.headers), "body": body}


def _is_json(content_type: str | None) -> bool:
    mime = (content_type or "").lower()
    return mime == "application/json" or mime.endswith("+json")
