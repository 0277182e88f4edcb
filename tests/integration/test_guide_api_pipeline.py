"""The guide's "1. API Data Pipeline" (golden/guide_api_pipeline) against real services.

A local aiohttp app plays ``https://api.example.com``: ``GET /users?page=N`` lists the users
of page N and ``GET /users/{id}/profile`` returns a profile, except for one user whose
profile fails with a plain-text 500 (so the guide's ``await profile_response.json()``
raises and ``continue_on_error=True`` turns it into an error record). The users are stored
in real PostgreSQL: the guide's SQL names ``users`` unqualified, so each test creates its own
schema holding ``users(id int primary key, name text, email text, profile jsonb)`` and
points the module at it with ``KFLOW_DB_SERVER_SETTINGS`` (``search_path``, plus an
``application_name`` to find the run's backends). The schema is dropped afterwards.

The rate limiter and the profile concurrency are checked by counting what the server saw:
``/users`` requests per window of server-side arrival times, and profile requests in flight
at once inside the handler.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from services import settle

from kflow import AsyncLocalRuntime
from kflow.api import compile_workflow
from kflow.loader import load_file
from kflow.runtime import load_module

pytestmark = pytest.mark.services

REPO = Path(__file__).resolve().parents[2]
CASE = REPO / "golden" / "guide_api_pipeline"

# The guide's settings, as the workflow declares them.
REQUESTS_PER_SECOND = 5.0
BURST = 5  # RateLimiter's default burst for 5 requests a second
MAX_WORKERS = 10
BATCH_SIZE = 50

# The users of page 1 in the end-to-end test: more than MAX_WORKERS, and more than one
# batch of BATCH_SIZE once the failing user is left out.
PAGE_SIZE = 60
FAILING_INDEX = 6

# Server-side arrival times trail the limiter's release by the time a request takes to
# reach the handler (a new session and connection per run, on a loop shared with the
# server). Requests released together can arrive in another order, a few ms apart; this
# much such skew is allowed when counting arrivals per window.
ARRIVAL_SKEW = 0.05


def users_of_page(page: int, size: int) -> list[dict[str, Any]]:
    return [
        {"id": page * 1000 + i, "name": f"User {page}-{i}", "email": f"u{page}_{i}@example.com"}
        for i in range(1, size + 1)
    ]


def profile_of(user_id: int) -> dict[str, Any]:
    # Nested, unicode, numbers, booleans and null: what jsonb must keep as it is.
    return {
        "user_id": user_id,
        "bio": f"Bio of {user_id} — naïve café",
        "tags": ["a", "b", str(user_id)],
        "stats": {"score": user_id / 4, "active": user_id % 2 == 0, "manager": None},
    }


def enriched(user: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": user["id"],
        "name": user["name"],
        "email": user["email"],
        "profile": profile_of(user["id"]),
    }


@dataclass
class UsersApi:
    """``GET /users?page=N`` and ``GET /users/{id}/profile``, with what the server saw."""

    page_size: int
    failing_id: int | None = None
    # Profile handlers hold until this many are in flight at once (None: never hold), so
    # the peak shows the client's real concurrency limit rather than how fast we answer.
    hold_until_in_flight: int | None = None
    url: str = ""
    users_requests: list[tuple[float, str | None]] = field(default_factory=list)
    profile_requests: list[int] = field(default_factory=list)
    in_flight: int = 0
    peak_in_flight: int = 0
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/users", self._users)
        app.router.add_get("/users/{id}/profile", self._profile)
        return app

    async def _users(self, request: web.Request) -> web.Response:
        # Server-side arrival time, taken before anything else is awaited.
        self.users_requests.append((time.monotonic(), request.query.get("page")))
        page = int(request.query.get("page", "1"))
        return web.json_response(users_of_page(page, self.page_size))

    async def _profile(self, request: web.Request) -> web.Response:
        user_id = int(request.match_info["id"])
        self.profile_requests.append(user_id)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            hold = self.hold_until_in_flight
            if hold is not None:
                if self.in_flight >= hold:
                    self._released.set()
                await self._released.wait()
            # Give other requests the chance to overlap this one.
            for _ in range(3):
                await asyncio.sleep(0)
            if user_id == self.failing_id:
                # Plain text, as a crashing server answers: .json() on it raises.
                raise web.HTTPInternalServerError(text="profile store exploded")
            return web.json_response(profile_of(user_id))
        finally:
            self.in_flight -= 1


ServeApp = Callable[[web.Application], Awaitable[str]]
NoLeaks = Callable[[], AbstractContextManager[None]]


async def start_api(serve: ServeApp, api: UsersApi) -> UsersApi:
    api.url = await serve(api.app())
    return api


@pytest.fixture
async def schema(pg_conn: Any, unique_name: str) -> AsyncIterator[str]:
    await pg_conn.execute(f"CREATE SCHEMA {unique_name}")
    try:
        await pg_conn.execute(
            f"CREATE TABLE {unique_name}.users"
            " (id int PRIMARY KEY, name text, email text, profile jsonb)"
        )
        yield unique_name
    finally:
        await pg_conn.execute(f"DROP SCHEMA IF EXISTS {unique_name} CASCADE")


def pipeline_environ(pg_dsn: str, schema: str, api_url: str, cache_port: int) -> dict[str, str]:
    parts = urlsplit(pg_dsn)
    environ = {
        "KFLOW_API_BASE_URL": api_url,
        "KFLOW_DB_HOST": parts.hostname or "127.0.0.1",
        "KFLOW_DB_PORT": str(parts.port or 5432),
        "KFLOW_DB_DATABASE": parts.path.lstrip("/") or "test",
        "KFLOW_DB_USER": parts.username or "postgres",
        "KFLOW_DB_SERVER_SETTINGS": json.dumps({"search_path": schema, "application_name": schema}),
        # The workflow declares a cache no node uses: pointed at a closed port, it must
        # never be opened (a run that tried would fail).
        "KFLOW_CACHE_HOST": "127.0.0.1",
        "KFLOW_CACHE_PORT": str(cache_port),
    }
    if parts.password:
        environ["KFLOW_DB_PASSWORD"] = parts.password
    return environ


def fresh_module() -> ModuleType:
    """The guide's module, compiled now, with a rate limiter no other run has used."""
    workflow, _ = load_file(str(CASE / "workflow.py"))
    source = compile_workflow(workflow).source
    # A distinct source is a distinct module, with its own module-level limiter.
    return load_module(f"{source}\n# test run {uuid.uuid4().hex}\n", "api_pipeline")


async def stored_rows(pg_conn: Any, schema: str) -> list[dict[str, Any]]:
    rows = await pg_conn.fetch(
        f"SELECT id, name, email, profile::text AS profile, jsonb_typeof(profile) AS kind"
        f" FROM {schema}.users ORDER BY id"
    )
    return [
        {
            "id": r["id"],
            "name": r["name"],
            "email": r["email"],
            "profile": json.loads(r["profile"]),
            "kind": r["kind"],
        }
        for r in rows
    ]




def window_violations(
    arrivals: list[float], burst: int, rate: float, skew: float
) -> list[tuple[int, float]]:
    """Every window [arrivals[i], arrivals[j]] holding more than ``burst + rate * T`` requests
    (T its length, plus ``skew``): (requests in it, T)."""
    times = sorted(arrivals)
    found = []
    for i in range(len(times)):
        for j in range(i, len(times)):
            count, span = j - i + 1, times[j] - times[i]
            if count > burst + rate * (span + skew):
                found.append((count, round(span, 4)))
    return found


# --------------------------------------------------------------------------- end to end


async def test_guide_pipeline_end_to_end(
    http_app_server: ServeApp,
    schema: str,
    pg_conn: Any,
    pg_dsn: str,
    free_port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    users = users_of_page(1, PAGE_SIZE)
    failing = users[FAILING_INDEX]
    api = await start_api(
        http_app_server,
        UsersApi(PAGE_SIZE, failing_id=failing["id"], hold_until_in_flight=MAX_WORKERS),
    )
    for var, value in pipeline_environ(pg_dsn, schema, api.url, free_port).items():
        monkeypatch.setenv(var, value)
    workflow, _ = load_file(str(CASE / "workflow.py"))

    envelope = await AsyncLocalRuntime().execute_workflow_async(workflow, {"page_num": 1})

    assert envelope["status"] == "success", envelope["errors"]
    assert envelope["errors"] == {} and envelope["skipped"] == [] and envelope["recovered"] == {}
    results = envelope["results"]
    assert list(results) == ["fetch_users", "process_users", "store_users"]

    # fetch_users: the page the server returned, fetched once with page=1.
    assert results["fetch_users"] == users
    assert [page for _, page in api.users_requests] == ["1"]

    # process_users: every user accounted for, the failing one as an error record.
    good = [u for u in users if u["id"] != failing["id"]]
    processed = results["process_users"]
    assert set(processed) == {"results", "errors", "statistics"}
    assert processed["results"] == [enriched(u) for u in good]  # in input order
    [error] = processed["errors"]
    assert set(error) == {"index", "item", "error", "error_type", "where"}
    assert error["where"] == "workflow.py:40"  # `profile = await profile_response.json()`
    assert error["index"] == FAILING_INDEX
    assert error["item"] == failing
    assert error["error_type"] == "ContentTypeError"
    assert "500" in error["error"] and f"/users/{failing['id']}/profile" in error["error"]
    accounted = [r["id"] for r in processed["results"]] + [
        e["item"]["id"] for e in processed["errors"]
    ]
    assert sorted(accounted) == [u["id"] for u in users]
    statistics = processed["statistics"]
    assert statistics["total"] == PAGE_SIZE
    assert statistics["successful"] == PAGE_SIZE - 1
    assert statistics["failed"] == 1
    assert statistics["max_workers"] == MAX_WORKERS

    # store_users: one output per stored user, in batches of 50.
    assert results["store_users"] == {
        "results": [{"stored": True, "id": u["id"]} for u in good],
        "processed_count": len(good),
        "batches": -(-len(good) // BATCH_SIZE),
    }
    assert results["store_users"]["batches"] == 2

    # PostgreSQL holds exactly the enriched users, each profile a JSON object.
    rows = await stored_rows(pg_conn, schema)
    assert [{k: v for k, v in r.items() if k != "kind"} for r in rows] == [
        enriched(u) for u in good
    ]
    assert {r["kind"] for r in rows} == {"object"}  # not a JSON string holding JSON

    # Every profile requested once, at most (and, held at the server, exactly) 10 at once.
    assert sorted(api.profile_requests) == [u["id"] for u in users]
    assert api.peak_in_flight == MAX_WORKERS
    assert api.in_flight == 0

    # The pool is closed when the run ends: no backend of this run is left.
    async def backends() -> int:
        return await pg_conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", schema
        )

    assert await settle(backends, 0) == 0


async def test_profile_concurrency_never_exceeds_max_workers(
    http_app_server: ServeApp,
    schema: str,
    pg_conn: Any,
    pg_dsn: str,
    free_port: int,
    no_leaks: NoLeaks,
) -> None:
    # Without holding requests at the server: whatever the timing, never more than 10.
    users = users_of_page(3, 150)
    api = await start_api(http_app_server, UsersApi(150))
    module = fresh_module()
    environ = pipeline_environ(pg_dsn, schema, api.url, free_port)

    async def run() -> dict[str, Any]:
        return await module.run({"page_num": 3}, environ=environ)

    with no_leaks():  # sessions, responses and the pool: all closed when the run ends
        envelope = await run()

    assert envelope["status"] == "success", envelope["errors"]
    assert envelope["results"]["process_users"]["errors"] == []
    assert sorted(api.profile_requests) == [u["id"] for u in users]
    assert 1 <= api.peak_in_flight <= MAX_WORKERS
    assert envelope["results"]["store_users"]["processed_count"] == 150
    assert envelope["results"]["store_users"]["batches"] == 3
    assert [r["id"] for r in await stored_rows(pg_conn, schema)] == [u["id"] for u in users]


# --------------------------------------------------------------------------- rate limit


async def test_rate_limit_is_shared_by_the_runs_of_one_process(
    http_app_server: ServeApp, schema: str, pg_conn: Any, pg_dsn: str, free_port: int
) -> None:
    api = await start_api(http_app_server, UsersApi(page_size=2))
    module = fresh_module()
    environ = pipeline_environ(pg_dsn, schema, api.url, free_port)
    # Up to a dozen runs overlap: small pools, so they cannot exhaust PostgreSQL.
    environ |= {"KFLOW_DB_MIN_SIZE": "1", "KFLOW_DB_MAX_SIZE": "2"}
    pages = list(range(1, 13))

    # Two rounds of concurrent runs, the second right after the first: the limiter is
    # the module's, so the second round finds the bucket the first one drained.
    envelopes = []
    for round_pages in (pages[:6], pages[6:]):
        envelopes += await asyncio.gather(
            *(module.run({"page_num": page}, environ=environ) for page in round_pages)
        )

    for page, envelope in zip(pages, envelopes, strict=True):
        assert envelope["status"] == "success", (page, envelope["errors"])
        assert envelope["results"]["fetch_users"] == users_of_page(page, 2)
    # One /users request per run, each for its own page.
    assert sorted(int(page) for _, page in api.users_requests if page) == pages
    assert len(api.users_requests) == len(pages)
    # In any window of T seconds, at most burst + rps * T of them reached the server.
    arrivals = [t for t, _ in api.users_requests]
    assert window_violations(arrivals, BURST, REQUESTS_PER_SECOND, ARRIVAL_SKEW) == []
    # Every run stored its own page.
    expected_ids = sorted(u["id"] for page in pages for u in users_of_page(page, 2))
    assert [r["id"] for r in await stored_rows(pg_conn, schema)] == expected_ids


def test_window_check_catches_a_burst_past_the_limit() -> None:
    # The counting check itself: the guide's limit allows 5 at once, then 1 per 0.2 s.
    allowed = [0.0] * 5 + [0.2 * n for n in range(1, 8)]
    assert window_violations(allowed, BURST, REQUESTS_PER_SECOND, ARRIVAL_SKEW) == []
    too_many = [0.0] * 6
    assert window_violations(too_many, BURST, REQUESTS_PER_SECOND, ARRIVAL_SKEW)
    too_fast = [0.0] * 5 + [0.1 * n for n in range(1, 8)]
    assert window_violations(too_fast, BURST, REQUESTS_PER_SECOND, ARRIVAL_SKEW)
