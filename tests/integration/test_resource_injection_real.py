"""Injecting real resources: objects the test owns are used and never closed by the run;
registry factories are called once per run and closed through their cleanup.

The declared database points at a port nothing listens on, so a run that ignored the
injected object would fail.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from services import settle

from kflow import AsyncLocalRuntime, AsyncWorkflowBuilder, ResourceRegistry, compile_workflow
from kflow.runtime import load_module

pytestmark = pytest.mark.services


def workflow_on_db(free_port: int) -> Any:
    """Two concurrent nodes and a resource node on `db`, declared at an unused port."""
    builder = AsyncWorkflowBuilder("injected_db")
    builder.with_database("db", host="127.0.0.1", port=free_port, database="nowhere")
    builder.add_async_code("code_node", "result = await db.fetchval('SELECT $1::int * 2', n)")
    builder.add_resource_node(
        "resource_node", "db", "fetchrow", {"query": "SELECT $1::text AS word", "params": ["hi"]}
    )
    builder.add_async_code(
        "who",
        "async with db.acquire() as conn:\n"
        "    result = await conn.fetchval('SELECT current_setting($1)', 'application_name')",
    )
    return builder.build()


def assert_ran_on(envelope: dict[str, Any], app_name: str) -> None:
    assert envelope["status"] == "success", envelope["errors"]
    assert envelope["results"] == {
        "code_node": 42,
        "resource_node": {"word": "hi"},
        "who": app_name,
    }


@pytest.fixture
async def own_pool(pg_dsn: str, unique_name: str) -> Any:
    pool = await asyncpg.create_pool(
        pg_dsn, min_size=1, max_size=3, server_settings={"application_name": unique_name}
    )
    try:
        yield pool
    finally:
        await pool.close()


async def still_usable(pool: Any) -> None:
    assert not pool.is_closing()
    assert await pool.fetchval("SELECT 1") == 1


async def test_run_with_an_injected_pool(own_pool: Any, unique_name: str, free_port: int) -> None:
    workflow = workflow_on_db(free_port)
    module = load_module(compile_workflow(workflow).source, workflow.name)

    envelope = await module.run({"n": 21}, resources={"db": own_pool})

    assert_ran_on(envelope, unique_name)
    await still_usable(own_pool)
    # And again: the first run did not take the pool with it.
    assert_ran_on(await module.run({"n": 21}, resources={"db": own_pool}), unique_name)
    await still_usable(own_pool)


async def test_local_runtime_with_an_injected_pool(
    own_pool: Any, unique_name: str, free_port: int
) -> None:
    envelope = await AsyncLocalRuntime().execute_workflow_async(
        workflow_on_db(free_port), {"n": 21}, resources={"db": own_pool}
    )
    assert_ran_on(envelope, unique_name)
    await still_usable(own_pool)


async def test_registered_instance_is_not_closed(
    own_pool: Any, unique_name: str, free_port: int
) -> None:
    registry = ResourceRegistry()
    registry.register_instance("db", own_pool)
    runtime = AsyncLocalRuntime(resource_registry=registry)
    for _ in range(2):
        assert_ran_on(
            await runtime.execute_workflow_async(workflow_on_db(free_port), {"n": 21}),
            unique_name,
        )
        await still_usable(own_pool)


class PoolFactory:
    """A registry factory making real pools; records what it made and what it closed."""

    def __init__(self, pg_dsn: str, app_name: str) -> None:
        self.pg_dsn = pg_dsn
        self.app_name = app_name
        self.made: list[Any] = []
        self.closed: list[Any] = []

    async def make(self) -> Any:
        await asyncio.sleep(0)  # let concurrent nodes pile up on the same open
        pool = await asyncpg.create_pool(
            self.pg_dsn, min_size=1, max_size=3, server_settings={"application_name": self.app_name}
        )
        self.made.append(pool)
        return pool

    async def cleanup(self, pool: Any) -> None:
        self.closed.append(pool)
        await pool.close()


async def backends(pg_conn: Any, app_name: str) -> int:
    return await pg_conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app_name
    )




@pytest.mark.parametrize("fails", [False, True], ids=["success", "failure"])
async def test_registry_factory_once_per_run_with_cleanup(
    pg_dsn: str,
    pg_conn: Any,
    unique_name: str,
    free_port: int,
    open_connections: Callable[[int], int],
    fails: bool,
) -> None:
    pg_port = urlsplit(pg_dsn).port or 5432
    before = open_connections(pg_port)
    factory = PoolFactory(pg_dsn, unique_name)
    registry = ResourceRegistry()
    registry.register_factory("db", factory.make, cleanup=factory.cleanup)
    builder = AsyncWorkflowBuilder("factory_db")
    builder.with_database("db", host="127.0.0.1", port=free_port)
    builder.add_async_code("a", "result = await db.fetchval('SELECT 1')")
    builder.add_async_code("b", "result = await db.fetchval('SELECT 2')")
    builder.add_async_code(
        "c", "await db.fetchval('SELECT 3')\nif fail:\n    raise ValueError('c')\nresult = 3"
    )
    workflow = builder.build()
    runtime = AsyncLocalRuntime(resource_registry=registry)

    for n in (1, 2):
        envelope = await runtime.execute_workflow_async(workflow, {"fail": fails})
        assert envelope["results"]["a"] == 1 and envelope["results"]["b"] == 2
        assert envelope["status"] == ("failed" if fails else "success")
        # Three concurrent nodes, one pool per run; each closed by its cleanup.
        assert len(factory.made) == n
        assert factory.closed == factory.made
        assert factory.made[-1].is_closing()

    assert await settle(lambda: backends(pg_conn, unique_name), 0) == 0
    assert await settle(lambda: open_connections(pg_port), before) == before
