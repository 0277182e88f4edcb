"""The guide's "4. Resilient External Service Integration" (golden/guide_resilient_service)
with the primary service down, against local aiohttp servers and real Redis.

- The primary answers ``POST /process`` and ``GET /data/{id}`` with a plain-text 503, as a
  proxy in front of a dead service does (so the guide's ``await response.json()`` raises).
- The backup answers ``POST /process`` with a JSON dict that numbers its replies, so a value
  served from the cache can be told from a fresh one.
- Redis: the module's ``cache`` is pointed at database ``REDIS_DB`` (``KFLOW_CACHE_DB``); the
  key template is fixed (``service_data_{item_id}``), so each test deletes exactly the keys
  of its own item ids, before and after.

The circuit breaker lives at module level and is shared by every run in the process, so
each test loads a module of its own (a distinct source is a distinct module); the script
test runs the shipped golden file in fresh processes.
"""

from __future__ import annotations

import asyncio
import json
import shutil
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
from services import run_script

from kflow.api import compile_workflow
from kflow.loader import load_file
from kflow.runtime import load_module

pytestmark = pytest.mark.services

REPO = Path(__file__).resolve().parents[2]
CASE = REPO / "golden" / "guide_resilient_service"
WORKFLOW_FILE = CASE / "workflow.py"

FAILURE_THRESHOLD = 5
TTL_SECONDS = 1800
REDIS_DB = 11  # not the default 0: the fixed key names stay out of everyone else's way
REQUEST = {"order": 7, "lines": [{"sku": "A-1", "qty": 2}], "note": "größer"}

ServeApp = Callable[[web.Application], Awaitable[str]]
NoLeaks = Callable[[], AbstractContextManager[None]]


def line_of(text: str) -> int:
    """The line of workflow.py holding ``text`` (once)."""
    lines = [n for n, line in enumerate(WORKFLOW_FILE.read_text().splitlines(), 1) if text in line]
    assert len(lines) == 1, (text, lines)
    return lines[0]


@dataclass
class Services:
    """The primary (down) and the backup, with what each saw."""

    primary_hangs: bool = False  # /process never answers (a dead host behind a proxy)
    primary_url: str = ""
    backup_url: str = ""
    primary_process: list[Any] = field(default_factory=list)  # JSON bodies
    primary_data: list[str] = field(default_factory=list)  # ids
    backup_process: list[Any] = field(default_factory=list)  # JSON bodies

    def primary_app(self) -> web.Application:
        async def process(request: web.Request) -> web.Response:
            self.primary_process.append(await request.json())
            if self.primary_hangs:
                await asyncio.Event().wait()  # cancelled when the server stops
            raise web.HTTPServiceUnavailable(text="primary is down")

        async def data(request: web.Request) -> web.Response:
            self.primary_data.append(request.match_info["id"])
            raise web.HTTPServiceUnavailable(text="primary is down")

        app = web.Application()
        app.router.add_post("/process", process)
        app.router.add_get("/data/{id}", data)
        return app

    def backup_app(self) -> web.Application:
        async def process(request: web.Request) -> web.Response:
            body = await request.json()
            self.backup_process.append(body)
            return web.json_response(
                {"source": "backup", "reply": len(self.backup_process), "echo": body}
            )

        app = web.Application()
        app.router.add_post("/process", process)
        return app


def backup_reply(n: int, request: dict[str, Any] = REQUEST) -> dict[str, Any]:
    """What use_backup outputs for the backup's n-th reply."""
    return {"source": "backup", "reply": n, "echo": request, "_used_backup": True}


@pytest.fixture
async def services(http_app_server: ServeApp) -> Services:
    found = Services()
    found.primary_url = await http_app_server(found.primary_app())
    found.backup_url = await http_app_server(found.backup_app())
    return found


@pytest.fixture
async def cache(redis_url: str) -> AsyncIterator[Any]:
    """A client on REDIS_DB; every key the test names through ``cache.track(...)`` is
    deleted before the test uses it and after the test."""
    import redis.asyncio as aioredis

    parts = urlsplit(redis_url)
    client = aioredis.Redis(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 6379,
        db=REDIS_DB,
        password=parts.password,
        decode_responses=True,
    )
    tracked: list[str] = []

    async def track(*keys: str) -> None:
        tracked.extend(keys)
        await client.delete(*keys)

    client.track = track  # type: ignore[attr-defined]
    try:
        yield client
    finally:
        if tracked:
            await client.delete(*tracked)
        await client.aclose()


def service_environ(redis_url: str, services: Services) -> dict[str, str]:
    parts = urlsplit(redis_url)
    environ = {
        "KFLOW_PRIMARY_API_BASE_URL": services.primary_url,
        "KFLOW_BACKUP_API_BASE_URL": services.backup_url,
        "KFLOW_CACHE_HOST": parts.hostname or "127.0.0.1",
        "KFLOW_CACHE_PORT": str(parts.port or 6379),
        "KFLOW_CACHE_DB": str(REDIS_DB),
    }
    if parts.password:
        environ["KFLOW_CACHE_PASSWORD"] = parts.password
    return environ


def fresh_module(workflow_file: Path = WORKFLOW_FILE) -> ModuleType:
    """The guide's module, compiled now, with a circuit breaker no other run has used."""
    workflow, _ = load_file(str(workflow_file))
    source = compile_workflow(workflow).source
    return load_module(f"{source}\n# test run {uuid.uuid4().hex}\n", "service_integration")


def assert_backup_path(envelope: dict[str, Any], backup: dict[str, Any]) -> None:
    """The primary failed, try_primary was recovered, use_backup holds the backup's reply."""
    assert envelope["status"] == "success", envelope["errors"]
    assert envelope["errors"] == {} and envelope["skipped"] == []
    assert set(envelope["recovered"]) == {"try_primary"}
    raise_line = line_of('raise Exception("Primary service unavailable")')
    assert envelope["recovered"]["try_primary"] == (
        f"workflow.py:{raise_line}: Exception: Primary service unavailable"
    )
    assert envelope["results"]["try_primary"] is None
    assert envelope["results"]["use_backup"] == backup


# --------------------------------------------------------------------------- miss, then hit


async def test_primary_down_backup_used_then_cached(
    services: Services, cache: Any, redis_url: str, no_leaks: NoLeaks
) -> None:
    await cache.track("service_data_42")
    module = fresh_module()
    environ = service_environ(redis_url, services)
    inputs = {"request_data": REQUEST, "item_id": "42"}

    async def first_run() -> dict[str, Any]:
        return await module.run(inputs, environ=environ)

    with no_leaks():
        first = await first_run()

    # primary_service: the breaker's failure record, the circuit still closed after one.
    assert first["results"]["primary_service"] == {
        "success": False,
        "error": "Service error: 503",
        "error_type": "Exception",
        "circuit_state": "closed",
    }
    assert services.primary_process == [REQUEST]
    assert_backup_path(first, backup_reply(1))
    assert services.backup_process == [REQUEST]
    # A miss: the fetch code ran, asked the primary for /data/42 (503, so .json() raised)
    # and fell back to the backup's data, which was stored for 30 minutes.
    assert first["results"]["cache_check"] == {
        "key": "service_data_42",
        "hit": False,
        "value": None,
    }
    assert services.primary_data == ["42"]
    assert first["results"]["fetch_fresh"] == backup_reply(1)
    assert first["results"]["cache_store"] == backup_reply(1)
    assert json.loads(await cache.get("service_data_42")) == backup_reply(1)
    ttl = await cache.ttl("service_data_42")
    assert 0 < ttl <= TTL_SECONDS
    assert list(first["results"]) == [
        "primary_service",
        "try_primary",
        "use_backup",
        "cache_check",
        "fetch_fresh",
        "cache_store",
    ]

    second = await module.run(inputs, environ=environ)

    # The primary and the backup are asked again (they come before the cache) ...
    assert len(services.primary_process) == 2
    assert second["results"]["primary_service"]["circuit_state"] == "closed"
    assert_backup_path(second, backup_reply(2))
    # ... but the cache hits: the fetch code does not run, no /data request, and the
    # output is the first run's stored value, not the backup's new reply.
    assert second["results"]["cache_check"] == {
        "key": "service_data_42",
        "hit": True,
        "value": backup_reply(1),
    }
    assert services.primary_data == ["42"]
    assert second["results"]["fetch_fresh"] == backup_reply(1)
    assert second["results"]["cache_store"] == backup_reply(1)
    # The hit did not store again: the value is the first one, its TTL not renewed upward.
    assert json.loads(await cache.get("service_data_42")) == backup_reply(1)
    assert 0 < await cache.ttl("service_data_42") <= ttl


async def test_another_item_is_another_key(services: Services, cache: Any, redis_url: str) -> None:
    item = f"item-{uuid.uuid4().hex[:8]}"
    await cache.track("service_data_42", f"service_data_{item}")
    module = fresh_module()
    environ = service_environ(redis_url, services)

    first = await module.run({"request_data": REQUEST, "item_id": "42"}, environ=environ)
    other = await module.run({"request_data": REQUEST, "item_id": item}, environ=environ)

    assert first["results"]["cache_check"]["hit"] is False
    assert other["results"]["cache_check"] == {
        "key": f"service_data_{item}",
        "hit": False,
        "value": None,
    }
    assert services.primary_data == ["42", item]
    assert other["results"]["cache_store"] == backup_reply(2)
    assert json.loads(await cache.get("service_data_42")) == backup_reply(1)
    assert json.loads(await cache.get(f"service_data_{item}")) == backup_reply(2)


async def test_redis_down_fails_the_cache_nodes_only(
    services: Services, redis_url: str, free_port: int
) -> None:
    module = fresh_module()
    environ = service_environ(redis_url, services) | {
        "KFLOW_CACHE_HOST": "127.0.0.1",
        "KFLOW_CACHE_PORT": str(free_port),
    }

    envelope = await module.run({"request_data": REQUEST, "item_id": "42"}, environ=environ)

    assert envelope["status"] == "failed"
    assert list(envelope["errors"]) == ["cache_check"]
    message = envelope["errors"]["cache_check"]
    assert f"resource 'cache' (redis 127.0.0.1:{free_port}/{REDIS_DB})" in message, message
    assert envelope["skipped"] == ["fetch_fresh", "cache_store"]
    # What does not depend on the cache still ran: primary failed over to the backup.
    assert envelope["results"]["use_backup"] == backup_reply(1)
    assert set(envelope["recovered"]) == {"try_primary"}
    assert services.primary_data == []  # the fetch code never ran


# --------------------------------------------------------------------------- circuit breaker


async def test_breaker_opens_after_threshold_and_stops_calling_the_primary(
    services: Services, cache: Any, redis_url: str
) -> None:
    module = fresh_module()
    environ = service_environ(redis_url, services)
    items = [f"breaker-{uuid.uuid4().hex[:8]}-{n}" for n in range(FAILURE_THRESHOLD + 3)]
    await cache.track(*(f"service_data_{item}" for item in items))
    states = []

    for run_number, item in enumerate(items, 1):
        envelope = await module.run({"request_data": REQUEST, "item_id": item}, environ=environ)

        primary = envelope["results"]["primary_service"]
        states.append(primary["circuit_state"])
        # The backup answers every run, whatever the circuit does.
        assert_backup_path(envelope, backup_reply(run_number))
        assert envelope["results"]["cache_store"] == backup_reply(run_number)
        if run_number <= FAILURE_THRESHOLD:
            # Each of the first five runs reaches the primary once and fails.
            assert len(services.primary_process) == run_number
            assert primary == {
                "success": False,
                "error": "Service error: 503",
                "error_type": "Exception",
                "circuit_state": "closed" if run_number < FAILURE_THRESHOLD else "open",
            }
        else:
            # Open: the code does not run, the primary's /process sees nothing more.
            assert len(services.primary_process) == FAILURE_THRESHOLD
            assert primary["success"] is False
            assert primary["error_type"] == "CircuitOpenError"
            assert primary["circuit_state"] == "open"
            assert primary["error"].startswith(
                f"circuit open after {FAILURE_THRESHOLD} consecutive failures"
            ), primary["error"]

    assert states == ["closed"] * (FAILURE_THRESHOLD - 1) + ["open"] * 4
    assert len(services.backup_process) == len(items)
    # The breaker guards primary_service only: fetch_fresh (not guarded) still asks
    # the primary's /data on every miss.
    assert services.primary_data == items
    # The breaker is the module's: another module starts closed.
    other = fresh_module()
    await cache.track("service_data_42")
    envelope = await other.run({"request_data": REQUEST, "item_id": "42"}, environ=environ)
    assert envelope["results"]["primary_service"]["circuit_state"] == "closed"
    assert len(services.primary_process) == FAILURE_THRESHOLD + 1


HANG_TIMEOUT = 0.5


async def test_a_hanging_primary_is_a_breaker_failure_and_the_backup_is_used(
    services: Services, cache: Any, redis_url: str, tmp_path: Path
) -> None:
    # The guide's workflow with one change: the primary_service node's own timeout is
    # 0.5 s instead of the default 30 s (same line, so workflow.py's lines do not move).
    # The primary accepts POST /process and never answers. A call that does not finish
    # in time is a failed call: the breaker must count it and output its failure record
    # ({"success": False, ...}), so try_primary fails over to the backup, and after five
    # such runs the circuit opens and the primary is no longer called.
    services.primary_hangs = True
    source = WORKFLOW_FILE.read_text()
    variant = source.replace(
        "reset_timeout=60.0\n)", f"reset_timeout=60.0, timeout={HANG_TIMEOUT}\n)"
    )
    assert variant != source and variant.count("\n") == source.count("\n")
    workflow_file = tmp_path / "workflow.py"
    workflow_file.write_text(variant)
    module = fresh_module(workflow_file)
    environ = service_environ(redis_url, services)
    items = [f"hang-{uuid.uuid4().hex[:8]}-{n}" for n in range(FAILURE_THRESHOLD + 2)]
    await cache.track(*(f"service_data_{item}" for item in items))

    for run_number, item in enumerate(items, 1):
        envelope = await module.run({"request_data": REQUEST, "item_id": item}, environ=environ)

        # Today: the node's timeout cancels the breaker's call from outside, so the breaker
        # records nothing, primary_service fails and every node after it is skipped.
        assert envelope["errors"] == {}, (run_number, envelope["errors"], envelope["skipped"])
        assert_backup_path(envelope, backup_reply(run_number))
        primary = envelope["results"]["primary_service"]
        assert primary["success"] is False
        if run_number <= FAILURE_THRESHOLD:
            assert len(services.primary_process) == run_number
            assert primary["error_type"] == "TimeoutError", primary
            expected_state = "closed" if run_number < FAILURE_THRESHOLD else "open"
            assert primary["circuit_state"] == expected_state
        else:
            assert len(services.primary_process) == FAILURE_THRESHOLD
            assert primary["error_type"] == "CircuitOpenError"
            assert primary["circuit_state"] == "open"


# --------------------------------------------------------------------------- as a script




async def test_shipped_module_as_a_script(
    services: Services, cache: Any, redis_url: str, tmp_path: Path
) -> None:
    item = f"script-{uuid.uuid4().hex[:8]}"
    await cache.track(f"service_data_{item}")
    script = tmp_path / "expected.py"
    shutil.copy(CASE / "expected.py", script)
    environ = service_environ(redis_url, services)
    inputs = {"request_data": REQUEST, "item_id": item}

    code, first, stderr = await run_script(script, environ, "--inputs", json.dumps(inputs))
    assert code == 0, stderr
    assert first is not None
    assert_backup_path(first, backup_reply(1))
    assert first["results"]["cache_check"]["hit"] is False
    assert first["results"]["cache_store"] == backup_reply(1)

    code, second, stderr = await run_script(script, environ, "--inputs", json.dumps(inputs))
    assert code == 0, stderr
    assert second is not None
    assert second["results"]["cache_check"]["hit"] is True
    assert second["results"]["cache_store"] == backup_reply(1)
    # A new process, a new breaker: closed again, so the primary was asked both times.
    assert second["results"]["primary_service"]["circuit_state"] == "closed"
    assert len(services.primary_process) == 2
    assert services.primary_data == [item]
    assert 0 < await cache.ttl(f"service_data_{item}") <= TTL_SECONDS
