"""Secrets never reach a generated module: they become environment lookups kflowc names.

Checked three ways: the golden modules (and a fresh compile of every golden workflow) hold
none of the secret values their workflows use; a workflow full of credentials (DSN and
Redis URL with passwords, credential headers) compiles to a module that holds only the
variable names, and that module, run as a script, gets the real values from the
environment and reaches the real services with them.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import textwrap
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from kflow import AsyncLocalRuntime, AsyncWorkflowBuilder, compile_workflow
from kflow.builder import runtime_extras
from kflow.loader import load_file

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "golden"
GOLDEN_CASES = sorted(d for d in GOLDEN.iterdir() if (d / "workflow.py").is_file())

# The guide's own secrets, as the golden workflows write them.
GUIDE_SECRETS = ("secure_password", "Bearer your-token", "your-token")

Kflowc = Callable[..., tuple[int, str, str]]


def secret_lookups(source: str) -> set[str]:
    """The variables a module reads secrets from: every `rt.Secret("VAR")` in it."""
    import ast

    return {
        node.args[0].value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        and node.func.attr == "Secret" and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "rt"
    }

# An oracle of its own, not the compiler's: names that smell of credentials.
_CREDENTIAL_NAME = re.compile(r"pass|token|secret|api_?key|credential|auth|cookie", re.I)


def credential_values(settings: Mapping[str, Any], name: str = "") -> Iterator[str]:
    """Every credential in a resource's settings, as the builder received them."""
    for key, value in settings.items():
        label = f"{name}.{key}" if name else str(key)
        if isinstance(value, Mapping):
            yield from credential_values(value, label)
            continue
        if not isinstance(value, str) or not value:
            continue
        if _CREDENTIAL_NAME.search(label):
            yield value
            scheme, _, token = value.partition(" ")
            if token and scheme.isalpha():
                yield token  # "Bearer abc": the token alone must not appear either
        try:
            password = urlsplit(value).password
        except ValueError:
            password = None
        if password:
            yield value
            yield password


def load_recording_settings(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, list[Mapping[str, Any]]]:
    """Load a workflow file, recording the settings of every resource it declares."""
    seen: list[Mapping[str, Any]] = []
    original = AsyncWorkflowBuilder._add_resource

    def recording(self: Any, name: str, kind: str, settings: dict[str, Any]) -> Any:
        seen.append(dict(settings))
        return original(self, name, kind, settings)

    with monkeypatch.context() as patch:
        patch.setattr(AsyncWorkflowBuilder, "_add_resource", recording)
        workflow, _ = load_file(str(path))
    return workflow, seen


# --------------------------------------------------------------------------- goldens


@pytest.fixture(scope="module")
def golden_secrets() -> dict[str, set[str]]:
    """Secret values per golden case: the oracle's, the builder's side table, the guide's."""
    found: dict[str, set[str]] = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        for case in GOLDEN_CASES:
            workflow, declared = load_recording_settings(case / "workflow.py", monkeypatch)
            values = {v for settings in declared for v in credential_values(settings)}
            values |= set(runtime_extras(workflow).secrets.values())
            found[case.name] = values
    return found


def test_the_oracle_finds_the_guides_secrets(golden_secrets: dict[str, set[str]]) -> None:
    everything = set().union(*golden_secrets.values())
    assert set(GUIDE_SECRETS) <= everything, everything
    assert "secure_password" in golden_secrets["database_operations"]
    assert "Bearer your-token" in golden_secrets["http_client"]


@pytest.mark.parametrize("case", GOLDEN_CASES, ids=[c.name for c in GOLDEN_CASES])
def test_no_golden_module_holds_a_secret(case: Path, golden_secrets: dict[str, set[str]]) -> None:
    secrets = set(GUIDE_SECRETS).union(*golden_secrets.values())
    workflow, _ = load_file(str(case / "workflow.py"))
    texts = [
        ("compiled", compile_workflow(workflow, source_file="workflow.py").source),
        ("IR", workflow.to_json()),
    ]
    if (case / "expected.py").exists():  # a case being added may not have one yet
        texts.append(("expected.py", (case / "expected.py").read_text()))
    for where, text in texts:
        leaked = sorted(s for s in secrets if s in text)
        assert not leaked, f"{case.name} {where} contains {leaked}"


def test_golden_modules_read_the_guides_secrets_from_the_environment() -> None:
    db = (GOLDEN / "database_operations" / "expected.py").read_text()
    assert "KFLOW_MAIN_DB_PASSWORD" in secret_lookups(db)
    http = (GOLDEN / "http_client" / "expected.py").read_text()
    assert "KFLOW_AUTHENTICATED_API_HEADERS_AUTHORIZATION" in secret_lookups(http)
    assert '"User-Agent": "MyApp/1.0"' in http  # not a credential: stays in the module


@pytest.mark.parametrize(
    ("case", "variables"),
    [
        ("database_operations", ["KFLOW_MAIN_DB_PASSWORD"]),
        ("http_client", ["KFLOW_AUTHENTICATED_API_HEADERS_AUTHORIZATION"]),
    ],
)
def test_kflowc_build_prints_the_variables(
    kflowc: Kflowc, tmp_path: Path, case: str, variables: list[str]
) -> None:
    out = tmp_path / "out.py"
    code, stdout, stderr = kflowc("build", str(GOLDEN / case / "workflow.py"), "-o", str(out))
    assert code == 0, stderr
    line = next(
        x for x in stderr.splitlines() if x.startswith("reads secrets from the environment")
    )
    assert line.split(":", 1)[1].strip().split(", ") == variables
    assert not any(s in out.read_text() for s in GUIDE_SECRETS)
    # Printed to stdout (no -o), the module is just as clean, and the names go to stderr.
    code, stdout, stderr = kflowc("build", str(GOLDEN / case / "workflow.py"))
    assert code == 0
    assert not any(s in stdout for s in GUIDE_SECRETS)
    assert all(v in stderr for v in variables)


# --------------------------------------------------------------------------- a workflow full of them


def credential_workflow(secrets: dict[str, str]) -> str:
    return textwrap.dedent(
        f"""
        from kailash.workflow import AsyncWorkflowBuilder

        builder = AsyncWorkflowBuilder("credentials")
        builder.with_database("db", dsn={secrets["dsn"]!r}, max_size=1)
        builder.with_cache("cache", url={secrets["redis_url"]!r})
        builder.with_http_client(
            "api",
            base_url="https://api.example.com/v1",
            headers={{
                "X-Api-Key": {secrets["api_key"]!r},
                "Cookie": {secrets["cookie"]!r},
                "Proxy-Authorization": {secrets["proxy"]!r},
                "Accept": "application/json",
            }},
        )
        builder.add_async_code("use_all", '''
        async with db.acquire() as conn:
            one = await conn.fetchval("SELECT 1")
        pong = await cache.ping()
        response = await api.get("/headers")
        seen = (await response.json())["headers"]
        result = {{"one": one, "pong": pong, "seen": seen}}
        ''')
        workflow = builder.build()
        """
    ).lstrip()


SECRET_VARS = {
    "dsn": "KFLOW_DB_DSN",
    "redis_url": "KFLOW_CACHE_URL",
    "api_key": "KFLOW_API_HEADERS_X_API_KEY",
    "cookie": "KFLOW_API_HEADERS_COOKIE",
    "proxy": "KFLOW_API_HEADERS_PROXY_AUTHORIZATION",
}


def fresh_secrets() -> dict[str, str]:
    tag = uuid.uuid4().hex[:10]
    return {
        "password": f"dbpw-{tag}",
        "dsn": f"postgresql://app:dbpw-{tag}@db.internal:5432/app",
        "redis_password": f"redispw-{tag}",
        "redis_url": f"redis://:redispw-{tag}@cache.internal:6379/0",
        "api_key": f"apikey-{tag}",
        "cookie": f"session=cookie-{tag}",
        "proxy": f"Basic proxy-{tag}",
    }


def test_credentials_become_environment_lookups(kflowc: Kflowc, tmp_path: Path) -> None:
    secrets = fresh_secrets()
    workflow_file = tmp_path / "workflow.py"
    workflow_file.write_text(credential_workflow(secrets))
    out = tmp_path / "out.py"

    code, _, stderr = kflowc("build", str(workflow_file), "-o", str(out))

    assert code == 0, stderr
    source = out.read_text()
    leaked = sorted(k for k, v in secrets.items() if v in source)
    assert not leaked, f"the module holds the {leaked}"
    for var in SECRET_VARS.values():
        assert var in secret_lookups(source)
    printed = stderr.split("reads secrets from the environment:", 1)[1].split()
    assert [v.rstrip(",") for v in printed] == sorted(SECRET_VARS.values())
    assert "application/json" in source  # an ordinary header stays


def test_a_password_in_the_base_url_is_a_secret_too() -> None:
    # docs/resources.md: "a DSN or URL with a password in it" becomes Secret(...).
    builder = AsyncWorkflowBuilder("basic_auth")
    builder.with_http_client("api", base_url="https://user:basicpw-5e1@api.example.com/v1")
    builder.add_async_code("a", "result = api.base_url")
    source = compile_workflow(builder.build()).source
    assert "basicpw-5e1" not in source
    assert "KFLOW_API_BASE_URL" in secret_lookups(source)


def test_a_credential_setting_holding_a_url_is_still_a_secret() -> None:
    # A password that happens to contain "://", and a webhook secret that is a URL
    # without user-info: the setting's name makes them secrets, whatever the value looks like.
    builder = AsyncWorkflowBuilder("url_like_secrets")
    builder.with_database("db", host="db.internal", password="pa://ss-77e")
    builder.with_http_client(
        "api",
        base_url="https://api.example.com",
        webhook_secret="https://hooks.example.com/T0/B0/sekrit-88f",
    )
    builder.add_async_code("a", "result = [db, api]")
    source = compile_workflow(builder.build()).source
    assert "ss-77e" not in source
    assert "sekrit-88f" not in source
    assert {"KFLOW_DB_PASSWORD", "KFLOW_API_WEBHOOK_SECRET"} <= secret_lookups(source)


@pytest.fixture
async def header_echo(http_app_server: Callable[[web.Application], Awaitable[str]]) -> str:
    async def headers(request: web.Request) -> web.Response:
        return web.json_response({"headers": dict(request.headers)})

    app = web.Application()
    app.router.add_get("/v1/headers", headers)
    return await http_app_server(app)


async def test_the_module_reads_them_when_it_runs(
    kflowc: Kflowc, tmp_path: Path, pg_dsn: str, redis_url: str, header_echo: str
) -> None:
    built_with = fresh_secrets()
    workflow_file = tmp_path / "workflow.py"
    workflow_file.write_text(credential_workflow(built_with))
    out = tmp_path / "out.py"
    assert kflowc("build", str(workflow_file), "-o", str(out))[0] == 0
    # The run's own credentials: the real services, and header values unlike the builder's.
    tag = uuid.uuid4().hex[:8]
    environ = {
        "KFLOW_DB_DSN": pg_dsn,
        "KFLOW_CACHE_URL": redis_url,
        "KFLOW_API_BASE_URL": f"{header_echo}/v1",
        "KFLOW_API_HEADERS_X_API_KEY": f"run-key-{tag}",
        "KFLOW_API_HEADERS_COOKIE": f"session=run-{tag}",
        "KFLOW_API_HEADERS_PROXY_AUTHORIZATION": f"Basic run-{tag}",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("KFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(out),
        "--inputs",
        "{}",
        cwd=str(tmp_path),
        env={**env, **environ},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await proc.communicate()

    assert proc.returncode == 0, stderr.decode()
    result = json.loads(stdout)["results"]["use_all"]
    assert result["one"] == 1 and result["pong"] is True
    seen = result["seen"]
    assert seen["X-Api-Key"] == f"run-key-{tag}"
    assert seen["Cookie"] == f"session=run-{tag}"
    assert seen["Proxy-Authorization"] == f"Basic run-{tag}"
    assert seen["Accept"] == "application/json"


async def test_messages_never_show_a_secret(
    free_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = f"pw-{uuid.uuid4().hex[:8]}"
    builder = AsyncWorkflowBuilder("masked")
    builder.with_database("db", dsn="postgresql://app:declared@db.internal/app", max_size=1)
    builder.add_async_code("q", "result = await db.fetchval('SELECT 1')")
    monkeypatch.setenv("KFLOW_DB_DSN", f"postgresql://app:{password}@127.0.0.1:{free_port}/app")

    envelope = await AsyncLocalRuntime().execute_workflow_async(builder.build(), {})

    message = envelope["errors"]["q"]
    assert f"127.0.0.1:{free_port}" in message and "resource 'db'" in message
    assert password not in message and "declared" not in message


# --------------------------------------------------------------------------- new shapes


@pytest.fixture
async def auth_echo(http_app_server: Callable[[web.Application], Awaitable[str]]) -> str:
    """Echoes what arrived: headers, cookies, the query string."""

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({
            "headers": dict(request.headers), "cookies": dict(request.cookies),
            "query": dict(request.query),
        })

    app = web.Application()
    app.router.add_get("/v1/echo", echo)
    return await http_app_server(app)


async def test_pairs_auth_cookies_and_url_tokens_are_read_when_the_module_runs(
    kflowc: Kflowc, tmp_path: Path, auth_echo: str
) -> None:
    """Header pairs, auth=(user, password), cookies= and a token in base_url: none is
    written into the module, and each arrives from the environment at run time."""
    from services import run_script

    workflow_file = tmp_path / "workflow.py"
    workflow_file.write_text(textwrap.dedent(f"""
        from kailash.workflow import AsyncWorkflowBuilder

        builder = AsyncWorkflowBuilder("shapes")
        builder.with_http_client(
            "api",
            base_url="{auth_echo}/v1?access_token=built-token",
            headers=[("X-Auth-Token", "built-header"), ("Accept", "application/json")],
            auth=("alice", "built-password"),
            cookies={{"sid": "built-cookie"}},
        )
        builder.add_async_code("call", '''
        response = await api.get("/echo")
        result = await response.json()
        ''')
        workflow = builder.build()
    """).lstrip())
    out = tmp_path / "out.py"
    code, _, stderr = kflowc("build", str(workflow_file), "-o", str(out))
    assert code == 0, stderr
    assert "built-" not in out.read_text()
    assert "built-" not in (await asyncio.to_thread(
        lambda: load_file(str(workflow_file))[0].to_json()))
    environ = {
        # (HttpSession joins paths onto base_url as text, so the run's URL has no query.)
        "KFLOW_API_BASE_URL": f"{auth_echo}/v1",
        "KFLOW_API_HEADERS_X_AUTH_TOKEN": "run-header",
        "KFLOW_API_AUTH_PASSWORD": "run-password",
        "KFLOW_API_COOKIES_SID": "run-cookie",
    }
    code, envelope, err = await run_script(out, environ, "--inputs", "{}")
    assert code == 0, (err, envelope)
    seen = envelope["results"]["call"]
    assert seen["headers"]["X-Auth-Token"] == "run-header"
    assert seen["headers"]["Accept"] == "application/json"
    import base64

    assert seen["headers"]["Authorization"] == "Basic " + base64.b64encode(
        b"alice:run-password").decode()
    assert seen["cookies"] == {"sid": "run-cookie"}
