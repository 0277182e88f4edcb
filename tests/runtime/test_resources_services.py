"""Database, Cache and HttpClient against real PostgreSQL, Redis and a local aiohttp server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from services import pg_settings, settle

from kflow_runtime.resources import (
    Cache,
    Database,
    HttpClient,
    HttpSession,
    ResourceError,
    Resources,
    Secret,
)

pytestmark = pytest.mark.services

NoLeaks = Callable[[], AbstractContextManager[None]]




async def backends(pg_conn: Any, app_name: str) -> int:
    return await pg_conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app_name
    )




def port_of(url: str, default: int) -> int:
    return urlsplit(url).port or default


# --------------------------------------------------------------------------- database


async def test_database_pool_query_and_close(
    pg_dsn: str,
    pg_conn: Any,
    unique_name: str,
    no_leaks: NoLeaks,
    open_connections: Callable[[int], int],
) -> None:
    pg_port = port_of(pg_dsn, 5432)
    before = open_connections(pg_port)
    spec = Database(
        "db",
        pg_settings(
            pg_dsn,
            min_size=2,
            max_size=3,
            command_timeout=30,
            server_settings={"application_name": unique_name},
        ),
    )

    async def run() -> None:
        async with Resources({"db": spec}) as res:
            pool = await res.get("db")
            assert await pool.fetchval("SELECT $1::int + 1", 41) == 42
            assert (pool.get_min_size(), pool.get_max_size()) == (2, 3)
            # min_size connections exist on the server as soon as the pool is open.
            assert await backends(pg_conn, unique_name) == 2
            assert open_connections(pg_port) == before + 2
            async with pool.acquire() as conn:
                assert await conn.fetchval("SHOW application_name") == unique_name

    with no_leaks():
        await run()
    assert await settle(lambda: open_connections(pg_port), before) == before
    assert await settle(lambda: backends(pg_conn, unique_name), 0) == 0


async def test_database_max_size_alone_is_enough(pg_dsn: str) -> None:
    # asyncpg's own min_size default (10) would exceed max_size=3 and fail.
    async with Resources({"db": Database("db", pg_settings(pg_dsn, max_size=3))}) as res:
        pool = await res.get("db")
        assert pool.get_max_size() == 3 and pool.get_min_size() <= 3
        held = [await pool.acquire() for _ in range(3)]
        assert pool.get_size() == 3
        for conn in held:
            await pool.release(conn)


async def test_database_env_overrides_and_secret(pg_dsn: str, unique_name: str) -> None:
    # Trust auth ignores the password, but it still has to resolve before connecting.
    spec = Database(
        "db",
        pg_settings(
            pg_dsn,
            password=Secret("KFLOW_DB_PASSWORD"),
            server_settings={"application_name": "declared"},
        ),
    )
    environ = {
        "KFLOW_DB_PASSWORD": urlsplit(pg_dsn).password or "unused",
        "KFLOW_DB_SERVER_SETTINGS_APPLICATION_NAME": unique_name,
        "KFLOW_DB_MAX_SIZE": "2",
    }
    async with Resources({"db": spec}, environ=environ) as res:
        pool = await res.get("db")
        assert await pool.fetchval("SHOW application_name") == unique_name
        assert pool.get_max_size() == 2


async def test_database_dsn_setting(pg_dsn: str) -> None:
    async with Resources(
        {"db": Database("db", {"dsn": Secret("TEST_DSN"), "max_size": 1})},
        environ={"TEST_DSN": pg_dsn},
    ) as res:
        assert await (await res.get("db")).fetchval("SELECT 1") == 1


async def test_database_connection_refused(free_port: int, no_leaks: NoLeaks) -> None:
    spec = Database("db", {"host": "127.0.0.1", "port": free_port, "database": "test"})

    async def attempt() -> tuple[str, ResourceError]:
        res = Resources({"db": spec})
        try:
            with pytest.raises(ResourceError) as err:
                await res.get("db")
            assert res.opened == ()
        finally:
            await res.aclose()
        return str(err.value), err.value

    with no_leaks():
        message, error = await attempt()
        cause = error.__cause__
        del error  # its traceback holds the frames; let gc see everything
    assert message.startswith(f"resource 'db' (postgresql 127.0.0.1:{free_port}/test): ")
    assert "could not connect" in message
    assert isinstance(cause, OSError), cause
    assert type(cause).__name__ in message


# --------------------------------------------------------------------------- cache


async def test_cache_set_get_from_url(
    redis_url: str, unique_name: str, no_leaks: NoLeaks, open_connections: Callable[[int], int]
) -> None:
    key = f"{unique_name}:k"
    redis_port = port_of(redis_url, 6379)
    before = open_connections(redis_port)

    async def run() -> None:
        async with Resources({"cache": Cache("cache", {"url": redis_url})}) as res:
            cache = await res.get("cache")
            await cache.set(key, "value", ex=60)
            assert await cache.get(key) == "value"  # decode_responses=True: str, not bytes
            await cache.delete(key)
            assert open_connections(redis_port) > before

    with no_leaks():
        await run()
    assert await settle(lambda: open_connections(redis_port), before) == before


async def test_cache_from_host_port_db(redis_url: str, unique_name: str) -> None:
    parts = urlsplit(redis_url)
    settings: dict[str, Any] = {
        "host": parts.hostname,
        "port": parts.port or 6379,
        "db": int(parts.path.lstrip("/") or 0),
    }
    if parts.password:
        settings["password"] = Secret("KFLOW_CACHE_PASSWORD")
    environ = {"KFLOW_CACHE_PASSWORD": parts.password or ""}
    async with Resources({"cache": Cache("cache", settings)}, environ=environ) as res:
        cache = await res.get("cache")
        await cache.set(f"{unique_name}:n", 5, ex=60)
        assert await cache.incr(f"{unique_name}:n") == 6
        await cache.delete(f"{unique_name}:n")


async def test_cache_down(free_port: int, no_leaks: NoLeaks) -> None:
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    # Any redis.asyncio.Redis keyword passes through; no retries keeps this test quick.
    spec = Cache("cache", {"host": "127.0.0.1", "port": free_port, "retry": Retry(NoBackoff(), 0)})

    async def attempt() -> str:
        async with Resources({"cache": spec}) as res:
            with pytest.raises(ResourceError) as err:
                await res.get("cache")
            assert res.opened == ()
        return str(err.value)

    with no_leaks():
        message = await attempt()
    assert message.startswith(
        f"resource 'cache' (redis 127.0.0.1:{free_port}/0): could not connect"
    )
    assert "ConnectionError" in message


# --------------------------------------------------------------------------- http


async def test_http_base_url_without_path(http_server: Any, no_leaks: NoLeaks) -> None:
    async def run() -> None:
        spec = HttpClient("api", {"base_url": http_server.url})
        async with Resources({"api": spec}) as res:
            api = await res.get("api")
            assert isinstance(api, HttpSession)
            response = await api.get("/users", params={"page": 1})
            assert response.status == 200
            users = await response.json()
            assert users[0]["name"] == "Ada"
            async with api.get(f"/users/{users[0]['id']}/profile") as r:
                assert r.status == 200
                assert (await r.json())["path"] == "/users/1/profile"
            response = await api.post("/echo", json={"a": 1})
            assert (await response.json())["json"] == {"a": 1}

    with no_leaks():
        await run()
    assert http_server.requests[0].query == {"page": "1"}


@pytest.mark.parametrize("suffix", ["/v1", "/v1/"])
async def test_http_base_url_with_path(http_server: Any, suffix: str) -> None:
    spec = HttpClient("api", {"base_url": http_server.url + suffix})
    async with Resources({"api": spec}) as res:
        api = await res.get("api")
        for path in ("/echo", "echo", "/echo?x=1"):
            body = await (await api.get(path)).json()
            assert body["path"] == "/v1/echo", path
        assert (await (await api.get("/echo?x=1")).json())["query"] == {"x": "1"}
        # An absolute URL is used as is.
        body = await (await api.get(f"{http_server.url}/echo")).json()
        assert body["path"] == "/echo"


async def test_a_query_on_the_base_url_goes_on_every_request(http_server: Any) -> None:
    """`base_url="https://api/v1?api_key=..."` (the key from the environment, issue 10):
    the key must reach the server with every path, beside the path's own query."""
    spec = HttpClient("api", {"base_url": http_server.url + "/v1?api_key=k3y"})
    async with Resources({"api": spec}) as res:
        api = await res.get("api")
        for path, query in (("/echo", {"api_key": "k3y"}),
                            ("echo?x=1", {"api_key": "k3y", "x": "1"})):
            body = await (await api.get(path)).json()
            assert (body["path"], body["query"]) == ("/v1/echo", query), path
        assert api.url_for("") == http_server.url + "/v1?api_key=k3y"


async def test_http_default_headers_reach_the_server(http_server: Any) -> None:
    spec = HttpClient(
        "authenticated_api",
        {
            "base_url": http_server.url,
            "headers": {
                "Authorization": Secret("KFLOW_AUTHENTICATED_API_HEADERS_AUTHORIZATION"),
                "User-Agent": "MyApp/1.0",
                "X-Env": "declared",
            },
        },
    )
    environ = {
        "KFLOW_AUTHENTICATED_API_HEADERS_AUTHORIZATION": "Bearer t0k",
        "KFLOW_AUTHENTICATED_API_HEADERS_X_ENV": "overridden",
    }
    async with Resources({"authenticated_api": spec}, environ=environ) as res:
        api = await res.get("authenticated_api")
        headers = (await (await api.get("/headers")).json())["headers"]
    assert headers["Authorization"] == "Bearer t0k"
    assert headers["User-Agent"] == "MyApp/1.0"
    assert headers["X-Env"] == "overridden"


async def test_http_timeout_gives_a_clear_error(http_server: Any) -> None:
    spec = HttpClient("api", {"base_url": http_server.url, "timeout": 0.2})
    async with Resources({"api": spec}) as res:
        api = await res.get("api")
        with pytest.raises(TimeoutError) as err:
            await api.get("/hang")
        message = str(err.value)
        assert f"GET {http_server.url}/hang" in message
        assert "0.2 s" in message and "'api'" in message and "KFLOW_API_TIMEOUT" in message
        # Also with `async with`, and with a per-request timeout in plain seconds.
        with pytest.raises(TimeoutError, match="within 0.1 s"):
            async with api.get("/hang", timeout=0.1):
                pass
        # The session is still usable after a timeout.
        assert (await api.get("/users")).status == 200


async def test_http_connection_limit(http_server: Any) -> None:
    spec = HttpClient("api", {"base_url": http_server.url, "connection_limit": 2})
    async with Resources({"api": spec}) as res:
        api = await res.get("api")
        assert api.connector.limit == 2

        async def call() -> int:
            async with api.get("/gate") as r:
                return r.status

        calls = [asyncio.create_task(call()) for _ in range(5)]
        await http_server.wait_in_flight(2)
        # Give any request beyond the limit every chance to arrive before the gate opens.
        for _ in range(20):
            await asyncio.sleep(0.01)
        http_server.release_gate()
        assert await asyncio.gather(*calls) == [200] * 5
    assert http_server.peak_in_flight == 2


async def test_http_connection_refused_is_aiohttp_error(free_port: int) -> None:
    # Opening a session does not connect; the request fails, as aiohttp.ClientError.
    spec = HttpClient("api", {"base_url": f"http://127.0.0.1:{free_port}"})
    async with Resources({"api": spec}) as res:
        api = await res.get("api")
        with pytest.raises(aiohttp.ClientConnectionError):
            await api.get("/users")


async def test_leak_checks_catch_what_is_left_open(
    pg_dsn: str, no_leaks: NoLeaks, open_connections: Callable[[int], int]
) -> None:
    # The leak checks above mean something only if an unclosed object does trip them.
    import asyncpg

    async def leak_session() -> None:
        aiohttp.ClientSession()

    with pytest.raises(AssertionError, match="Unclosed client session"), no_leaks():
        await leak_session()

    pg_port = port_of(pg_dsn, 5432)
    before = open_connections(pg_port)
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=1)
    try:
        assert open_connections(pg_port) == before + 1
    finally:
        await pool.close()
    assert await settle(lambda: open_connections(pg_port), before) == before
