"""When a generated module opens and closes its resources, seen from the real services.

A module opens only what its nodes use, when they use it, and closes everything it opened
when the run ends: on success, on failure, after a node timeout and on cancellation.
Open connections are counted on both sides: this process's sockets (``open_connections``)
and PostgreSQL's backends for the run's ``application_name``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from services import settle

from kflow import AsyncLocalRuntime, AsyncWorkflowBuilder

pytestmark = pytest.mark.services

NoLeaks = Callable[[], AbstractContextManager[None]]
AppServer = Callable[[web.Application], Awaitable[str]]




def pg_settings(pg_dsn: str, app_name: str, **extra: Any) -> dict[str, Any]:
    parts = urlsplit(pg_dsn)
    settings: dict[str, Any] = {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
        "database": parts.path.lstrip("/") or "test",
        "user": parts.username or "postgres",
        "server_settings": {"application_name": app_name},
    }
    if parts.password:
        settings["password"] = parts.password
    return {**settings, **extra}


class PgWatch:
    """PostgreSQL connections of one run: its backends and this process's sockets."""

    def __init__(self, pg_dsn: str, pg_conn: Any, app_name: str, count: Callable[[int], int]):
        self.port = urlsplit(pg_dsn).port or 5432
        self.conn = pg_conn
        self.app_name = app_name
        self.count = count
        self.sockets_before = count(self.port)

    async def backends(self, state: str | None = None) -> int:
        return await self.conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
            " AND ($2::text IS NULL OR state = $2)",
            self.app_name,
            state,
        )

    async def assert_all_closed(self) -> None:
        assert await settle(self.backends, 0) == 0
        assert await settle(lambda: self.count(self.port), self.sockets_before) == (
            self.sockets_before
        )


@pytest.fixture
def pg_watch(
    pg_dsn: str, pg_conn: Any, unique_name: str, open_connections: Callable[[int], int]
) -> PgWatch:
    return PgWatch(pg_dsn, pg_conn, unique_name, open_connections)


class CountingServer:
    """A TCP port that counts the connections made to it (and closes them)."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.close()

        self._server = await asyncio.start_server(accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture
async def counting_server() -> Any:
    server = CountingServer()
    await server.start()
    yield server
    await server.stop()


async def run(workflow: Any, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    return await AsyncLocalRuntime().execute_workflow_async(workflow, inputs or {})


# --------------------------------------------------------------------------- only what is used


async def test_only_the_resources_nodes_use_are_opened(
    pg_dsn: str, pg_watch: PgWatch, counting_server: CountingServer
) -> None:
    # cache and api point at a port that counts connections; no node that runs uses them.
    builder = AsyncWorkflowBuilder("only_used")
    builder.with_database("db", **pg_settings(pg_dsn, pg_watch.app_name, max_size=1))
    builder.with_cache("cache", host="127.0.0.1", port=counting_server.port)
    builder.with_http_client("api", base_url=f"http://127.0.0.1:{counting_server.port}")
    builder.add_async_code("query", "result = await db.fetchval('SELECT 40 + 2')")
    builder.add_async_code("broken", "raise ValueError('upstream failed')")
    # Uses cache and api, but is skipped: its resources are never opened.
    builder.add_async_code(
        "cached",
        "await cache.set('k', value)\nresult = await (await api.get('/x')).text()",
        required_resources=["cache", "api"],
    )
    builder.add_connection("broken", "result", "cached", "value")

    envelope = await run(builder.build())

    assert envelope["results"] == {"query": 42}
    assert list(envelope["errors"]) == ["broken"]
    assert envelope["skipped"] == ["cached"]
    assert counting_server.connections == 0
    await pg_watch.assert_all_closed()


async def test_a_database_only_run_never_contacts_redis(
    pg_dsn: str, pg_watch: PgWatch, free_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Redis "down" (nothing listens on its port): the run does not notice.
    builder = AsyncWorkflowBuilder("db_not_cache")
    builder.with_database("db", **pg_settings(pg_dsn, pg_watch.app_name, max_size=1))
    builder.with_cache("cache", host="127.0.0.1")
    builder.add_async_code("query", "result = await db.fetchval('SELECT 1')")
    monkeypatch.setenv("KFLOW_CACHE_PORT", str(free_port))

    envelope = await run(builder.build())

    assert envelope["status"] == "success", envelope["errors"]
    assert envelope["results"] == {"query": 1}
    await pg_watch.assert_all_closed()


# --------------------------------------------------------------------------- closed at the end


@pytest.mark.parametrize("outcome", ["success", "failure"])
async def test_pool_closed_when_the_run_ends(
    pg_dsn: str, pg_watch: PgWatch, no_leaks: NoLeaks, outcome: str
) -> None:
    builder = AsyncWorkflowBuilder("closed_at_end")
    builder.with_database("db", **pg_settings(pg_dsn, pg_watch.app_name, min_size=2, max_size=3))
    builder.add_async_code(
        "work",
        """
        async with db.acquire() as conn:
            backends = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app_name
            )
        if fail:
            raise RuntimeError(f"failing with {backends} backends open")
        result = backends
        """,
    )
    workflow = builder.build()
    inputs = {"app_name": pg_watch.app_name, "fail": outcome == "failure"}

    async def go() -> dict[str, Any]:
        return await run(workflow, inputs)

    with no_leaks():
        envelope = await go()

    if outcome == "success":
        assert envelope["status"] == "success", envelope["errors"]
        assert envelope["results"]["work"] == 2  # min_size connections while it ran
    else:
        assert envelope["status"] == "failed"
        assert "failing with 2 backends open" in envelope["errors"]["work"]
    await pg_watch.assert_all_closed()


async def test_pool_closed_after_a_node_timeout_mid_query(
    pg_dsn: str, pg_watch: PgWatch, no_leaks: NoLeaks
) -> None:
    builder = AsyncWorkflowBuilder("node_timeout")
    builder.with_database("db", **pg_settings(pg_dsn, pg_watch.app_name, max_size=1))
    builder.add_async_code(
        "slow",
        """
        async with db.acquire() as conn:
            await conn.execute("SELECT pg_sleep(60)")
        result = "finished"
        """,
        timeout=0.5,
    )
    builder.add_async_code("fast", "result = await db.fetchval('SELECT 5')")
    builder.add_connection("slow", "result", "fast", "unused")
    builder.add_async_code("beside", "result = 'independent'")
    workflow = builder.build()

    async def go() -> dict[str, Any]:
        return await run(workflow)

    with no_leaks():
        envelope = await go()

    assert "timed out after 0.5s" in envelope["errors"]["slow"], envelope["errors"]
    assert envelope["skipped"] == ["fast"]
    assert envelope["results"] == {"beside": "independent"}
    await pg_watch.assert_all_closed()


# --------------------------------------------------------------------------- cancellation


@pytest.fixture
async def hang_server(http_app_server: AppServer) -> tuple[str, asyncio.Event]:
    arrived = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        arrived.set()
        await asyncio.Event().wait()  # until the server shuts down
        return web.Response()

    app = web.Application()
    app.router.add_get("/hang", hang)
    return await http_app_server(app), arrived


async def test_cancelled_run_closes_its_pool_and_session(
    pg_dsn: str,
    pg_watch: PgWatch,
    hang_server: tuple[str, asyncio.Event],
    no_leaks: NoLeaks,
    open_connections: Callable[[int], int],
) -> None:
    url, request_arrived = hang_server
    http_port = urlsplit(url).port
    assert http_port is not None
    builder = AsyncWorkflowBuilder("cancelled")
    builder.with_database("db", **pg_settings(pg_dsn, pg_watch.app_name, max_size=2))
    builder.with_http_client("api", base_url=url)
    builder.add_async_code(
        "hold_db",
        """
        async with db.acquire() as conn:
            await conn.execute("SELECT pg_sleep(60)")
        result = "never"
        """,
    )
    builder.add_async_code("hold_http", "result = (await api.get('/hang')).status")
    workflow = builder.build()

    async def go() -> None:
        task = asyncio.create_task(run(workflow))
        # Both nodes are inside their resources: the query runs on the server, the
        # request has reached the endpoint.
        assert await settle(lambda: pg_watch.backends("active"), 1) == 1
        await request_arrived.wait()
        assert open_connections(http_port) == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with no_leaks():
        await go()

    await pg_watch.assert_all_closed()
    assert await settle(lambda: open_connections(http_port), 0) == 0
