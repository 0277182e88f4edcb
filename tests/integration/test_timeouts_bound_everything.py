"""A node's timeout bounds everything it waits on: opening its resources, and its own
clean-up after the timeout; `retry_policy` retries a failed open (issue 11, parts 2-3).

Faults are injected into servers the tests start themselves (a TCP server that accepts
and never answers, a PostgreSQL and a Redis frozen with SIGSTOP, a proxy that drops the
first connection); the shared services are never touched. Each run sits under a generous
outer bound that only turns a hang into a failure: the assertions are on the envelope.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from services import PostgresInstance, RedisInstance, SilentServer, settle

from kflow import AsyncLocalRuntime, AsyncRetryPolicy, AsyncWorkflowBuilder, ResourceRegistry

# Far above every timeout below, far below asyncpg's own 60 s connect timeout.
HANG = 25.0

pytestmark = pytest.mark.services


async def run(workflow: Any, inputs: dict[str, Any] | None = None, **kwargs: Any) -> dict:
    async with asyncio.timeout(HANG):
        return await AsyncLocalRuntime(**kwargs).execute_workflow_async(workflow, inputs or {})


# --------------------------------------------------------------------------- opening


async def test_a_node_timeout_bounds_opening_a_database_that_never_answers(
    silent_server: Callable[[], Awaitable[SilentServer]],
    open_connections: Callable[[int], int],
) -> None:
    silent = await silent_server()
    builder = AsyncWorkflowBuilder("silent_db")
    builder.with_database("db", host="127.0.0.1", port=silent.port, database="app",
                          user="postgres")
    builder.add_async_code("read", "result = await db.fetchval('SELECT 1')", timeout=2)
    builder.add_async_code("after", "result = value")
    builder.add_connection("read", "result", "after", "value")
    builder.add_async_code("other", "result = 'independent'")

    envelope = await run(builder.build())

    assert envelope["errors"] == {"read": (
        f"TimeoutError: node 'read' timed out after 2s while opening resource 'db' "
        f"(postgresql 127.0.0.1:{silent.port}/app: no answer)"
    )}
    assert envelope["skipped"] == ["after"]
    assert envelope["results"] == {"other": "independent"}
    assert silent.accepted >= 1
    assert await settle(lambda: open_connections(silent.port), 0) == 0


async def test_a_node_timeout_bounds_opening_a_cache_that_never_answers(
    silent_server: Callable[[], Awaitable[SilentServer]],
    open_connections: Callable[[int], int],
) -> None:
    silent = await silent_server()
    builder = AsyncWorkflowBuilder("silent_cache")
    builder.with_cache("cache", host="127.0.0.1", port=silent.port)
    builder.add_async_code("get", "result = await cache.get('k')", timeout=1.5)

    envelope = await run(builder.build())

    assert envelope["errors"]["get"] == (
        f"TimeoutError: node 'get' timed out after 1.5s while opening resource 'cache' "
        f"(redis 127.0.0.1:{silent.port}/0: no answer)"
    )
    assert await settle(lambda: open_connections(silent.port), 0) == 0


async def test_an_open_is_bounded_for_a_node_without_a_timeout(
    silent_server: Callable[[], Awaitable[SilentServer]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import kflow_runtime.resources as resources

    monkeypatch.setattr(resources, "DEFAULT_OPEN_TIMEOUT", 1.0)
    silent = await silent_server()
    builder = AsyncWorkflowBuilder("silent_unbounded")
    builder.with_database("db", host="127.0.0.1", port=silent.port, database="app")
    builder.add_async_code("read", "result = await db.fetchval('SELECT 1')", timeout=None)

    envelope = await run(builder.build())

    assert envelope["errors"]["read"] == (
        f"ResourceError: resource 'db' (postgresql 127.0.0.1:{silent.port}/app): could not "
        f"connect: no answer within 1s"
    )


# --------------------------------------------------------------------------- clean-up


async def test_a_frozen_postgresql_mid_query_does_not_hang_the_run(
    fault_pg: PostgresInstance, unique_name: str,
) -> None:
    builder = AsyncWorkflowBuilder("frozen_pg")
    # No command_timeout: asyncpg would wait for the frozen server to confirm the cancel
    # of the query for ever; the node's deadline cancels that wait too.
    builder.with_database("db", host="127.0.0.1", port=fault_pg.port, database="postgres",
                          user="postgres", max_size=2,
                          server_settings={"application_name": unique_name})
    builder.add_async_code("warm", "result = await db.fetchval('SELECT 1')")
    builder.add_async_code("query", "freeze()\nresult = await db.fetchval('SELECT 2')",
                           timeout=2)
    builder.add_connection("warm", "result", "query", "ready")
    builder.add_async_code("other", "result = 'independent'")

    try:
        envelope = await run(builder.build(), {"freeze": fault_pg.freeze})
    finally:
        fault_pg.thaw()

    assert set(envelope["errors"]) == {"query"}
    assert envelope["errors"]["query"].endswith(
        "TimeoutError: node 'query' timed out after 2s (its clean-up was cut short after "
        "1s more)"
    ), envelope["errors"]
    assert envelope["results"] == {"warm": 1, "other": "independent"}
    # The pool could not close gracefully, so it was terminated: nothing is left open.
    assert await settle(lambda: fault_pg.backends(unique_name), 0) == 0


async def test_a_frozen_redis_mid_command_does_not_hang_the_run(
    fault_redis: RedisInstance, open_connections: Callable[[int], int],
) -> None:
    builder = AsyncWorkflowBuilder("frozen_redis")
    builder.with_cache("cache", host="127.0.0.1", port=fault_redis.port)
    builder.add_async_code("warm", "result = await cache.set('k', 'v')")
    builder.add_async_code("get", "freeze()\nresult = await cache.get('k')", timeout=1.5)
    builder.add_connection("warm", "result", "get", "ready")

    try:
        envelope = await run(builder.build(), {"freeze": fault_redis.freeze})
    finally:
        fault_redis.thaw()

    assert envelope["errors"]["get"].endswith("TimeoutError: node 'get' timed out after 1.5s")
    assert envelope["results"] == {"warm": True}
    assert await settle(lambda: open_connections(fault_redis.port), 0) == 0


async def test_clean_up_that_never_ends_is_cut_short_after_the_grace() -> None:
    builder = AsyncWorkflowBuilder("stuck_cleanup")
    builder.add_async_code("stuck", """
try:
    await asyncio.sleep(3600)
finally:
    cleanup.append("started")
    await asyncio.Event().wait()   # a clean-up waiting on something that never comes
""", timeout=0.5)
    stuck_line = inspect.currentframe().f_lineno - 2
    builder.add_async_code("other", "result = 1")
    cleanup: list[str] = []

    envelope = await run(builder.build(), {"cleanup": cleanup})

    assert cleanup == ["started"]
    # Reported at the line the clean-up was stuck on (this file's: the workflow is built here).
    assert envelope["errors"]["stuck"].endswith(
        f".py:{stuck_line}: TimeoutError: node 'stuck' timed out after 0.5s (its clean-up was cut short "
        "after 1s more)"
    ), envelope["errors"]
    assert envelope["results"] == {"other": 1}


# --------------------------------------------------------------------------- retries


class DropFirst:
    """A TCP proxy to PostgreSQL that resets its first `drops` connections."""

    def __init__(self, target_port: int, drops: int = 1) -> None:
        self.target_port = target_port
        self.drops = drops
        self.accepted = 0
        self.port = 0
        self.tasks: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> DropFirst:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self.server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.accepted <= self.drops:
            writer.transport.abort()  # a reset, as a crashing server or a firewall gives
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        for task in (asyncio.create_task(pipe(reader, up_writer)),
                     asyncio.create_task(pipe(up_reader, writer))):
            self.tasks.add(task)


def db_reader(port: int, app_name: str, retry: AsyncRetryPolicy) -> Any:
    builder = AsyncWorkflowBuilder("retried_open")
    builder.with_database("db", host="127.0.0.1", port=port, database="postgres",
                          user="postgres", max_size=1,
                          server_settings={"application_name": app_name})
    builder.add_async_code("read", "result = await db.fetchval('SELECT 41 + 1')",
                           retry_policy=retry)
    return builder.build()


async def test_retry_policy_retries_a_failed_database_open(
    fault_pg: PostgresInstance, unique_name: str,
) -> None:
    retry = AsyncRetryPolicy(max_attempts=3, initial_delay=0.01,
                             retry_exceptions=[ConnectionError])
    async with DropFirst(fault_pg.port) as proxy:
        envelope = await run(db_reader(proxy.port, unique_name, retry))

    assert envelope["status"] == "success", envelope["errors"]
    assert envelope["results"] == {"read": 42}
    assert envelope["attempts"] == {"read": 2}
    assert proxy.accepted == 2
    assert await settle(lambda: fault_pg.backends(unique_name), 0) == 0


async def test_a_failed_open_the_policy_does_not_cover_is_not_retried(
    fault_pg: PostgresInstance, unique_name: str,
) -> None:
    retry = AsyncRetryPolicy(max_attempts=3, initial_delay=0.01, retry_exceptions=[KeyError])
    async with DropFirst(fault_pg.port) as proxy:
        envelope = await run(db_reader(proxy.port, unique_name, retry))

    assert envelope["attempts"] == {"read": 1}
    assert envelope["errors"]["read"].startswith(
        f"ResourceError: resource 'db' (postgresql 127.0.0.1:{proxy.port}/postgres): "
        "could not connect: ConnectionResetError"
    ), envelope["errors"]
    assert proxy.accepted == 1


def declared_factory() -> None:
    raise AssertionError("the registry's factory is used instead")


async def test_retry_policy_retries_a_failing_registry_factory() -> None:
    calls: list[int] = []

    def make() -> dict[str, int]:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError("not yet")
        return {"answer": 42}

    registry = ResourceRegistry()
    registry.register_factory("svc", make)
    builder = AsyncWorkflowBuilder("retried_factory")
    builder.require_resource("svc", declared_factory)  # the registry's factory stands in
    builder.add_async_code("use", "result = svc['answer']",
                           retry_policy=AsyncRetryPolicy(max_attempts=3, initial_delay=0.01))

    envelope = await run(builder.build(), resource_registry=registry)

    assert envelope["results"] == {"use": 42}
    assert envelope["attempts"] == {"use": 3}
    assert len(calls) == 3

