"""The guide's "HTTP Client Configuration" (golden/http_client) against a local aiohttp server.

The server serves ``GET /users`` only to the token the test puts in
``KFLOW_AUTHENTICATED_API_HEADERS_AUTHORIZATION`` and honours ``limit``;
``KFLOW_AUTHENTICATED_API_BASE_URL`` points the module at it.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from services import run_script

from kflow import AsyncLocalRuntime
from kflow.loader import load_file
from kflow.runtime import load_module

REPO = Path(__file__).resolve().parents[2]
CASE = REPO / "golden" / "http_client"
AUTH_VAR = "KFLOW_AUTHENTICATED_API_HEADERS_AUTHORIZATION"
BASE_VAR = "KFLOW_AUTHENTICATED_API_BASE_URL"
# More users than the workflow's limit=100, so the server's limit shows in the result.
ALL_USERS = [{"id": i, "name": f"user{i}"} for i in range(1, 131)]

NoLeaks = Callable[[], AbstractContextManager[None]]


@dataclass
class UsersApi:
    token: str
    url: str = ""
    seen: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> web.Application:
        async def users(request: web.Request) -> web.Response:
            self.seen.append({"headers": dict(request.headers), "query": dict(request.query)})
            if request.headers.get("Authorization") != self.token:
                return web.json_response({"error": "unauthorized"}, status=401)
            limit = int(request.query.get("limit", len(ALL_USERS)))
            return web.json_response({"users": ALL_USERS[:limit], "total": len(ALL_USERS)})

        app = web.Application()
        app.router.add_get("/users", users)
        return app


@pytest.fixture
async def api(http_app_server: Callable[[web.Application], Awaitable[str]]) -> UsersApi:
    server = UsersApi(token=f"Bearer test-{uuid.uuid4().hex}")
    server.url = await http_app_server(server.app())
    return server


def assert_users_result(result: dict[str, Any]) -> None:
    assert result == {"users": ALL_USERS[:100], "total": len(ALL_USERS)}


def assert_one_authorised_request(api: UsersApi) -> None:
    assert len(api.seen) == 1
    request = api.seen[0]
    assert request["headers"]["Authorization"] == api.token  # from the environment
    assert request["headers"]["User-Agent"] == "MyApp/1.0"  # from the builder
    assert request["query"] == {"limit": "100"}


# --------------------------------------------------------------------------- in-process


async def test_guide_example_in_process(
    api: UsersApi, monkeypatch: pytest.MonkeyPatch, no_leaks: NoLeaks
) -> None:
    monkeypatch.setenv(BASE_VAR, api.url)
    monkeypatch.setenv(AUTH_VAR, api.token)
    workflow, _ = load_file(str(CASE / "workflow.py"))

    async def run() -> dict[str, Any]:
        return await AsyncLocalRuntime().execute_workflow_async(workflow, {})

    with no_leaks():  # the session is closed: no "Unclosed client session"
        envelope = await run()

    assert envelope["status"] == "success", envelope["errors"]
    assert_users_result(envelope["results"]["api_call"])
    assert_one_authorised_request(api)


async def test_in_process_uses_the_builders_token_when_the_variable_is_unset(
    api: UsersApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In-process runs use the builder's values ("Bearer your-token"), which this server
    # refuses: the node's own error says so, and the token really was the builder's.
    monkeypatch.setenv(BASE_VAR, api.url)
    monkeypatch.delenv(AUTH_VAR, raising=False)
    workflow, _ = load_file(str(CASE / "workflow.py"))

    envelope = await AsyncLocalRuntime().execute_workflow_async(workflow, {})

    assert envelope["status"] == "failed"
    message = envelope["errors"]["api_call"]
    assert "API error: 401" in message
    assert message.startswith("workflow.py:")  # the user's own line
    assert [r["headers"]["Authorization"] for r in api.seen] == ["Bearer your-token"]


async def test_shipped_module_without_the_secret_fails_clearly(api: UsersApi) -> None:
    module = load_module((CASE / "expected.py").read_text(), "golden-http_client")

    envelope = await module.run({}, environ={BASE_VAR: api.url})

    assert envelope["status"] == "failed"
    message = envelope["errors"]["api_call"]
    assert "resource 'authenticated_api'" in message
    assert AUTH_VAR in message and "not set" in message
    assert "Authorization" in message
    assert api.seen == []  # failed before any request was sent


# --------------------------------------------------------------------------- as a script




async def test_guide_example_as_a_script(api: UsersApi, tmp_path: Path) -> None:
    script = tmp_path / "expected.py"
    shutil.copy(CASE / "expected.py", script)

    code, envelope, stderr = await run_script(script, {BASE_VAR: api.url, AUTH_VAR: api.token})

    assert code == 0, stderr
    assert envelope["status"] == "success", envelope["errors"]
    assert_users_result(envelope["results"]["api_call"])
    assert_one_authorised_request(api)
    assert "Unclosed" not in stderr


async def test_script_without_the_secret_names_the_variable(api: UsersApi, tmp_path: Path) -> None:
    script = tmp_path / "expected.py"
    shutil.copy(CASE / "expected.py", script)

    code, envelope, stderr = await run_script(script, {BASE_VAR: api.url})

    assert code == 1, stderr
    assert envelope["status"] == "failed"
    message = envelope["errors"]["api_call"]
    assert AUTH_VAR in message and "not set" in message
    assert "Bearer your-token" not in message
    assert api.seen == []
