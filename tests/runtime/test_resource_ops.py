"""resource_operation, what add_resource_node runs: database, http, cache, injected mocks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from unittest.mock import AsyncMock

import aiohttp
import pytest

from kflow_runtime.resource_ops import resource_operation
from kflow_runtime.resources import (
    Cache,
    Database,
    HttpClient,
    ResourceRegistry,
    Resources,
)

HOSTILE = "x'); DROP TABLE t; --"


# --------------------------------------------------------------------------- injected mocks


async def test_guide_async_mock_through_a_registry() -> None:
    # The guide's "Integration Testing" example: test_db exists only in the registry.
    registry = ResourceRegistry()
    mock_db = AsyncMock()
    registry.register_instance("test_db", mock_db)
    mock_db.fetch.return_value = [{"result": 1}]
    async with Resources({}, registry=registry) as res:
        db = await res.get("test_db")
        result = await resource_operation(db, res.kind("test_db"), "fetch", {"query": "SELECT 1"})
    assert result == [{"result": 1}]
    mock_db.fetch.assert_called_once_with("SELECT 1")


async def test_mock_injected_for_a_declared_database() -> None:
    mock_db = AsyncMock()
    mock_db.fetchrow.return_value = {"id": 7}
    specs = {"db": Database("db", {"host": "never-contacted.invalid"})}
    async with Resources(specs, injected={"db": mock_db}) as res:
        row = await resource_operation(
            await res.get("db"),
            res.kind("db"),
            "fetchrow",
            {"query": "SELECT * FROM users WHERE id = $1", "params": [7]},
        )
    assert row == {"id": 7}
    mock_db.fetchrow.assert_called_once_with("SELECT * FROM users WHERE id = $1", 7)


async def test_database_operation_checks() -> None:
    mock_db = AsyncMock()
    with pytest.raises(ValueError, match="one of execute, executemany, fetch"):
        await resource_operation(mock_db, "database", "drop_everything", {"query": "SELECT 1"})
    with pytest.raises(ValueError, match="query"):
        await resource_operation(mock_db, "database", "fetch", {})
    with pytest.raises(ValueError, match="list"):
        await resource_operation(mock_db, "database", "fetch", {"query": "q", "params": "abc"})
    mock_db.assert_not_called()


async def test_unknown_kind_without_query_calls_the_method() -> None:
    service = AsyncMock()
    service.process_payment.return_value = {"id": "t1"}
    result = await resource_operation(
        service, "custom", "process_payment", {"args": [{"amount": 5}], "kwargs": {"retry": False}}
    )
    assert result == {"id": "t1"}
    service.process_payment.assert_called_once_with({"amount": 5}, retry=False)
    with pytest.raises(ValueError, match="public method"):
        await resource_operation(service, "custom", "__class__", {})


# --------------------------------------------------------------------------- database


@pytest.fixture
async def db(pg_dsn: str) -> AsyncIterator[tuple[Resources, Any]]:
    async with Resources({"db": Database("db", {"dsn": pg_dsn, "max_size": 2})}) as res:
        yield res, await res.get("db")


@pytest.mark.services
async def test_database_operations_bind_parameters(
    db: tuple[Resources, Any], unique_name: str
) -> None:
    res, pool = db
    kind = res.kind("db")
    table = unique_name
    await pool.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, name text)")
    try:
        status = await resource_operation(
            pool,
            kind,
            "execute",
            {"query": f"INSERT INTO {table} (id, name) VALUES ($1, $2)", "params": [1, HOSTILE]},
        )
        assert status == "INSERT 0 1"
        await resource_operation(
            pool,
            kind,
            "executemany",
            {
                "query": f"INSERT INTO {table} (id, name) VALUES ($1, $2)",
                "params": [[2, "b"], [3, "c"]],
            },
        )
        rows = await resource_operation(
            pool,
            kind,
            "fetch",
            {"query": f"SELECT id, name FROM {table} WHERE id <= $1 ORDER BY id", "params": [2]},
        )
        assert rows == [{"id": 1, "name": HOSTILE}, {"id": 2, "name": "b"}]
        assert all(type(r) is dict for r in rows)
        # The hostile value was stored literally, and the table is still there.
        found = await resource_operation(
            pool,
            kind,
            "fetchrow",
            {"query": f"SELECT * FROM {table} WHERE name = $1", "params": [HOSTILE]},
        )
        assert found == {"id": 1, "name": HOSTILE}
        missing = await resource_operation(
            pool,
            kind,
            "fetchrow",
            {"query": f"SELECT * FROM {table} WHERE id = $1", "params": [99]},
        )
        assert missing is None
        count = await resource_operation(
            pool, kind, "fetchval", {"query": f"SELECT count(*) FROM {table}"}
        )
        assert count == 3
    finally:
        await pool.execute(f"DROP TABLE IF EXISTS {table}")


# --------------------------------------------------------------------------- http


@pytest.fixture
async def api(http_server: Any) -> AsyncIterator[Any]:
    async with Resources({"api": HttpClient("api", {"base_url": http_server.url})}) as res:
        yield await res.get("api")


async def test_http_get_json(api: Any) -> None:
    result = await resource_operation(api, "http", "get", {"path": "/users", "params": {"n": 1}})
    assert result["status"] == 200
    assert result["headers"]["Content-Type"].startswith("application/json")
    assert [u["name"] for u in result["body"]] == ["Ada", "Grace", "Linus"]


async def test_http_post_json_and_text_body(api: Any, http_server: Any) -> None:
    result = await resource_operation(api, "http", "POST", {"path": "/echo", "json": {"a": [1]}})
    assert result["body"] == {"method": "POST", "path": "/echo", "query": {}, "json": {"a": [1]}}
    text = await resource_operation(api, "http", "get", {"url": f"{http_server.url}/text"})
    assert (text["status"], text["body"]) == (200, "hello")


async def test_http_error_status_names_method_url_and_status(api: Any, http_server: Any) -> None:
    with pytest.raises(aiohttp.ClientResponseError) as err:
        await resource_operation(api, "http", "delete", {"path": "/status/503"})
    message = str(err.value)
    assert message.startswith(f"DELETE {http_server.url}/status/503 returned 503")
    assert err.value.status == 503
    with pytest.raises(aiohttp.ClientError, match="GET .*/users/99/profile returned 404"):
        await resource_operation(api, "http", "get", {"path": "/users/99/profile"})


# --------------------------------------------------------------------------- cache


@pytest.mark.services
async def test_cache_operations(redis_url: str, unique_name: str) -> None:
    key = f"{unique_name}:greeting"
    async with Resources({"cache": Cache("cache", {"url": redis_url})}) as res:
        cache = await res.get("cache")
        kind = res.kind("cache")
        assert (
            await resource_operation(
                cache, kind, "set", {"args": [key, "hi"], "kwargs": {"ex": 60}}
            )
            is True
        )
        assert await resource_operation(cache, kind, "get", {"args": [key]}) == "hi"
        assert await resource_operation(cache, kind, "ttl", {"args": [key]}) > 0
        assert await resource_operation(cache, kind, "delete", {"args": [key]}) == 1
        assert await resource_operation(cache, kind, "get", {"args": [key]}) is None
