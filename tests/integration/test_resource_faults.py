"""Faults of real services: the affected node gets a clear error, nothing stays open, and
nodes that do not depend on it keep their results.

Each workflow puts a healthy node (often on a healthy resource of the same kind) beside
the one that meets the fault, and a node downstream of the fault, which is skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from services import pg_settings, settle

from kflow import AsyncLocalRuntime, AsyncWorkflowBuilder

NoLeaks = Callable[[], AbstractContextManager[None]]
AppServer = Callable[[web.Application], Awaitable[str]]






async def run(workflow: Any, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    return await AsyncLocalRuntime().execute_workflow_async(workflow, inputs or {})


# --------------------------------------------------------------------------- PostgreSQL


@pytest.mark.services
async def test_postgresql_connection_refused(
    pg_dsn: str,
    pg_conn: Any,
    unique_name: str,
    free_port: int,
    monkeypatch: pytest.MonkeyPatch,
    open_connections: Callable[[int], int],
) -> None:
    pg_port = urlsplit(pg_dsn).port or 5432
    before = open_connections(pg_port)
    builder = AsyncWorkflowBuilder("pg_refused")
    builder.with_database("db", **pg_settings(pg_dsn, host="127.0.0.1", max_size=2))
    builder.with_database(
        "good", **pg_settings(pg_dsn, max_size=1, server_settings={"application_name": unique_name})
    )
    builder.add_async_code("read_db", "result = await db.fetchval('SELECT 1')")
    builder.add_resource_node("fetch_db", "db", "fetchval", {"query": "SELECT 2"})
    builder.add_async_code("after_db", "result = value + 1")
    builder.add_connection("read_db", "result", "after_db", "value")
    builder.add_async_code("read_good", "result = await good.fetchval('SELECT 41 + 1')")
    # Only the port is wrong, and only at run time.
    monkeypatch.setenv("KFLOW_DB_PORT", str(free_port))

    envelope = await run(builder.build())

    assert envelope["status"] == "failed"
    assert set(envelope["errors"]) == {"read_db", "fetch_db"}
    for message in envelope["errors"].values():
        assert "resource 'db'" in message, message
        assert f"127.0.0.1:{free_port}" in message, message
        assert "could not connect" in message, message
        assert "ConnectionRefusedError" in message or "Connect call failed" in message, message
    assert envelope["skipped"] == ["after_db"]
    assert envelope["results"] == {"read_good": 42}
    assert open_connections(free_port) == 0
    assert await settle(lambda: open_connections(pg_port), before) == before
    # The healthy pool was closed too.
    assert (
        await settle(
            lambda: pg_conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", unique_name
            ),
            0,
        )
        == 0
    )


# --------------------------------------------------------------------------- HTTP


def fault_app(stop: asyncio.Event) -> web.Application:
    async def fail(request: web.Request) -> web.Response:
        return web.json_response({"error": "boom"}, status=500)

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def hang(request: web.Request) -> web.Response:
        await stop.wait()  # never set: the server's shutdown cancels it
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/fail", fail)
    app.router.add_get("/ok", ok)
    app.router.add_get("/hang", hang)
    return app


@pytest.fixture
async def fault_server(http_app_server: AppServer) -> str:
    return await http_app_server(fault_app(asyncio.Event()))


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


async def test_http_500_in_node_code_and_in_a_resource_node(
    fault_server: str, no_leaks: NoLeaks, open_connections: Callable[[int], int]
) -> None:
    host_port = urlsplit(fault_server).netloc
    builder = AsyncWorkflowBuilder("http_500")
    builder.with_http_client("api", base_url=fault_server)
    builder.add_async_code(
        "call_fail",
        """
        response = await api.get("/fail")
        if response.status >= 400:
            raise RuntimeError(f"api: GET {response.url} returned {response.status}")
        result = await response.json()
        """,
    )
    builder.add_resource_node("fetch_fail", "api", "get", {"path": "/fail"})
    builder.add_async_code("after_fail", "result = data")
    builder.add_connection("fetch_fail", "result.body", "after_fail", "data")
    builder.add_async_code(
        "call_ok", "response = await api.get('/ok')\nresult = await response.json()"
    )
    builder.add_resource_node("fetch_ok", "api", "get", {"path": "/ok"})
    workflow = builder.build()

    async def go() -> dict[str, Any]:
        return await run(workflow)

    with no_leaks():
        envelope = await go()

    assert envelope["status"] == "failed"
    assert set(envelope["errors"]) == {"call_fail", "fetch_fail"}
    in_code = envelope["errors"]["call_fail"]
    # The user's own line and message.
    assert in_code.startswith("test_resource_faults.py:"), in_code
    assert f"RuntimeError: api: GET http://{host_port}/fail returned 500" in in_code
    in_node = envelope["errors"]["fetch_fail"]
    assert f"GET http://{host_port}/fail returned 500 Internal Server Error" in in_node
    assert "http resource 'api'" in in_node and "boom" in in_node, in_node
    assert envelope["skipped"] == ["after_fail"]
    assert envelope["results"]["call_ok"] == {"ok": True}
    ok = envelope["results"]["fetch_ok"]
    assert (ok["status"], ok["body"]) == (200, {"ok": True})
    assert await settle(lambda: open_connections(port_of(fault_server)), 0) == 0


async def test_http_hanging_endpoint_hits_the_client_timeout(
    fault_server: str, no_leaks: NoLeaks, open_connections: Callable[[int], int]
) -> None:
    host_port = urlsplit(fault_server).netloc
    builder = AsyncWorkflowBuilder("http_hang")
    builder.with_http_client("api", base_url=fault_server, timeout=0.3)
    builder.with_http_client("steady", base_url=fault_server)
    builder.add_async_code(
        "call_hang", "response = await api.get('/hang')\nresult = response.status"
    )
    builder.add_resource_node("fetch_hang", "api", "get", {"path": "/hang"})
    builder.add_async_code("after_hang", "result = status")
    builder.add_connection("call_hang", "result", "after_hang", "status")
    builder.add_async_code(
        "call_ok", "response = await steady.get('/ok')\nresult = await response.json()"
    )
    workflow = builder.build()

    async def go() -> dict[str, Any]:
        return await run(workflow)

    with no_leaks():
        envelope = await go()

    assert set(envelope["errors"]) == {"call_hang", "fetch_hang"}
    for message in envelope["errors"].values():
        assert f"GET http://{host_port}/hang: no response within 0.3 s" in message, message
        assert "timeout of http resource 'api'" in message
        assert "KFLOW_API_TIMEOUT" in message
    # The node's own timeout (30 s) is not what fired.
    assert not any("timed out after" in m for m in envelope["errors"].values())
    assert envelope["skipped"] == ["after_hang"]
    assert envelope["results"] == {"call_ok": {"ok": True}}
    assert await settle(lambda: open_connections(port_of(fault_server)), 0) == 0


# --------------------------------------------------------------------------- Redis


@pytest.mark.services
async def test_redis_down(
    redis_url: str,
    unique_name: str,
    free_port: int,
    monkeypatch: pytest.MonkeyPatch,
    open_connections: Callable[[int], int],
) -> None:
    redis_port = urlsplit(redis_url).port or 6379
    before = open_connections(redis_port)
    builder = AsyncWorkflowBuilder("redis_down")
    builder.with_cache("cache", host="127.0.0.1")
    builder.with_cache("good", url=redis_url)
    builder.add_async_code(
        "use_cache", "await cache.set(key, 'v', ex=60)\nresult = await cache.get(key)"
    )
    builder.add_async_code("after_cache", "result = value")
    builder.add_connection("use_cache", "result", "after_cache", "value")
    builder.add_async_code(
        "use_good",
        "await good.set(key, 'fine', ex=60)\nresult = await good.get(key)\nawait good.delete(key)",
    )
    builder.add_async_code("plain", "result = 7")
    monkeypatch.setenv("KFLOW_CACHE_PORT", str(free_port))

    envelope = await run(builder.build(), {"key": f"{unique_name}:k"})

    assert envelope["status"] == "failed"
    assert list(envelope["errors"]) == ["use_cache"]
    message = envelope["errors"]["use_cache"]
    assert f"resource 'cache' (redis 127.0.0.1:{free_port}/0): could not connect" in message
    assert "ConnectionError" in message and str(free_port) in message
    assert envelope["skipped"] == ["after_cache"]
    assert envelope["results"] == {"use_good": "fine", "plain": 7}
    assert open_connections(free_port) == 0
    assert await settle(lambda: open_connections(redis_port), before) == before
