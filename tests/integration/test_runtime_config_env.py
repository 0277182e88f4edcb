"""Run-time configuration: a module built with made-up addresses runs against the real
services once KFLOW_<RESOURCE>_<SETTING> variables point it there, as a script.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from kflow.runtime import load_module

REPO = Path(__file__).resolve().parents[2]
Kflowc = Callable[..., tuple[int, str, str]]

WORKFLOW = textwrap.dedent(
    '''
    from kailash.workflow import AsyncWorkflowBuilder, ErrorHandler

    builder = AsyncWorkflowBuilder("configured")
    builder.with_database(
        "db", host="db.invalid", port=1, database="nope", user="nobody", max_size=5,
        server_settings={"application_name": "declared"},
    )
    builder.with_http_client(
        "api", base_url="https://api.invalid/v1", timeout=30,
        headers={"User-Agent": "declared/1.0", "X-Env": "declared"},
    )
    builder.add_async_code("db_info", """
    async with db.acquire() as conn:
        app_name = await conn.fetchval("SHOW application_name")
    result = {"app_name": app_name, "max_size": db.get_max_size()}
    """)
    builder.add_async_code("seen_headers", """
    response = await api.get("/headers")
    result = (await response.json())["headers"]
    """)
    builder.add_async_code(
        "slow_call",
        "result = (await api.get('/hang')).status",
        error_handler=ErrorHandler("fallback", fallback_value="fallback"),
    )
    workflow = builder.build()
    '''
).lstrip()


@pytest.fixture
def module_file(tmp_path: Path, kflowc: Kflowc) -> Path:
    workflow_file = tmp_path / "workflow.py"
    workflow_file.write_text(WORKFLOW)
    out = tmp_path / "out.py"
    code, _, stderr = kflowc("build", str(workflow_file), "-o", str(out))
    assert code == 0, stderr
    return out


@pytest.fixture
async def api_url(http_app_server: Callable[[web.Application], Awaitable[str]]) -> str:
    async def headers(request: web.Request) -> web.Response:
        return web.json_response({"headers": dict(request.headers)})

    async def hang(request: web.Request) -> web.Response:
        await asyncio.Event().wait()  # until the server shuts down
        return web.Response()

    app = web.Application()
    app.router.add_get("/v1/headers", headers)
    app.router.add_get("/v1/hang", hang)
    return await http_app_server(app) + "/v1"


def pg_environ(pg_dsn: str) -> dict[str, str]:
    parts = urlsplit(pg_dsn)
    environ = {
        "KFLOW_DB_HOST": parts.hostname or "127.0.0.1",
        "KFLOW_DB_PORT": str(parts.port or 5432),
        "KFLOW_DB_DATABASE": parts.path.lstrip("/") or "test",
        "KFLOW_DB_USER": parts.username or "postgres",
    }
    if parts.password:
        environ["KFLOW_DB_PASSWORD"] = parts.password
    return environ


@pytest.mark.services
async def test_script_configured_from_the_environment(
    module_file: Path, pg_dsn: str, api_url: str, unique_name: str
) -> None:
    environ = {
        **pg_environ(pg_dsn),
        "KFLOW_DB_MAX_SIZE": "2",
        "KFLOW_DB_SERVER_SETTINGS_APPLICATION_NAME": unique_name,
        "KFLOW_API_BASE_URL": api_url,
        "KFLOW_API_TIMEOUT": "0.4",
        "KFLOW_API_HEADERS_USER_AGENT": "from-env/2.0",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("KFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    inputs_file = module_file.parent / "inputs.json"
    inputs_file.write_text("{}")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(module_file),
        "--inputs-file",
        str(inputs_file),
        cwd=str(module_file.parent),
        env={**env, **environ},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await proc.communicate()

    assert proc.returncode == 0, stderr.decode()
    envelope = json.loads(stdout)
    assert envelope["status"] == "success"
    assert envelope["results"]["db_info"] == {"app_name": unique_name, "max_size": 2}
    headers = envelope["results"]["seen_headers"]
    assert headers["User-Agent"] == "from-env/2.0"  # a declared key, by its own variable
    assert headers["X-Env"] == "declared"
    # The timeout came from KFLOW_API_TIMEOUT, not the declared 30 s.
    assert envelope["results"]["slow_call"] == "fallback"
    recovered = envelope["recovered"]["slow_call"]
    assert "no response within 0.4 s" in recovered and "KFLOW_API_TIMEOUT" in recovered


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("KFLOW_DB_PORT", "not-a-port", "KFLOW_DB_PORT='not-a-port' is not an integer"),
        ("KFLOW_DB_SERVER_SETTINGS", '{"password": "hunter2"', "KFLOW_DB_SERVER_SETTINGS is not"),
        ("KFLOW_DB_MAX_SIZE", "2.5", "KFLOW_DB_MAX_SIZE='2.5' is not an integer"),
    ],
)
async def test_bad_override_names_the_variable(
    module_file: Path, variable: str, value: str, expected: str
) -> None:
    module = load_module(module_file.read_text(), f"configured-{uuid.uuid4().hex}")

    envelope = await module.run({}, environ={variable: value, "KFLOW_API_BASE_URL": "x"})

    message = envelope["errors"]["db_info"]
    assert message.startswith("ResourceError: resource 'db': environment variable"), message
    assert expected in message
    assert "hunter2" not in message  # bad JSON is not echoed: it may hold credentials


def test_a_setting_without_a_text_form_is_not_a_traceback(kflowc: Kflowc, tmp_path: Path) -> None:
    # docs/resources.md lists `retry=Retry(...)` among the settings a cache takes ("cannot
    # be overridden"). kflowc must either compile it or report it at the user's line
    # (DESIGN.md section 7: never a traceback from inside kflow).
    workflow_file = tmp_path / "workflow.py"
    workflow_file.write_text(
        textwrap.dedent(
            """
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            from kailash.workflow import AsyncWorkflowBuilder

            builder = AsyncWorkflowBuilder("retrying_cache")
            builder.with_cache("cache", host="127.0.0.1", retry=Retry(NoBackoff(), 0))
            builder.add_async_code("ping", "result = await cache.ping()")
            workflow = builder.build()
            """
        ).lstrip()
    )
    try:
        code, _, stderr = kflowc("build", str(workflow_file), "-o", str(tmp_path / "out.py"))
    except Exception as exc:  # noqa: BLE001 - the point of the test
        pytest.fail(f"kflowc build raised {type(exc).__name__}: {exc}")
    assert code in (0, 2), stderr
    if code == 2:
        assert "workflow.py:7" in stderr and "retry" in stderr, stderr
