"""Secrets at run time: every error message, --progress line, --trace file and envelope
masks the credentials of URLs as `user:***@` (issue 11, part 9), including those that
reach the module only through the environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from services import LocalHttpServer, run_script

from kflow import AsyncLocalRuntime, AsyncPatterns, AsyncWorkflowBuilder, compile_workflow

PASSWORD = "s3cret-pw"


def leaky_workflow() -> str:
    builder = AsyncWorkflowBuilder("leaky")
    # No credentials at build time: the base URL with its password comes from the
    # environment (KFLOW_API_BASE_URL) when the module runs.
    builder.with_http_client("api", base_url="http://127.0.0.1:1/v1", timeout=0.5)
    builder.add_async_code("hang", "response = await api.get('/hang')\nresult = response.status")
    builder.add_async_code("raises", "raise ValueError(f'cannot reach {dsn}')")
    AsyncPatterns.parallel_fetch(builder, "fetch", {
        "bad": "raise ConnectionError(f'lost {dsn}')", "good": "result = 1",
    }, timeout_per_operation=5)
    builder.add_connection("hang", "result", "raises", "after")
    return compile_workflow(builder.build()).source


@pytest.mark.services
async def test_credentials_in_urls_are_masked_everywhere_a_run_shows_them(
    http_server: LocalHttpServer, tmp_path: Path,
) -> None:
    module = tmp_path / "out.py"
    module.write_text(leaky_workflow())
    base = http_server.url.replace("http://", f"http://user:{PASSWORD}@") + "/v1"
    dsn = f"postgresql://app:{PASSWORD}@db.internal:5432/prod"
    trace = tmp_path / "trace.json"

    code, envelope, stderr = await run_script(
        module, {"KFLOW_API_BASE_URL": base}, "--inputs", json.dumps({"dsn": dsn}),
        "--progress", "--trace", str(trace))

    assert code == 1
    assert envelope is not None
    masked_base = http_server.url.replace("http://", "http://user:***@") + "/v1"
    assert envelope["errors"]["hang"].endswith(
        f"GET {masked_base}/hang: no response within 0.5 s (timeout of http resource 'api'; "
        "override with KFLOW_API_TIMEOUT)"), envelope["errors"]
    assert envelope["results"]["fetch"]["failed"] == {  # at the user's line (issue 14.5)
        "bad": "test_secrets_at_run_time.py:26: ConnectionError: lost "
               "postgresql://app:***@db.internal:5432/prod"}
    # The progress lines on stderr name the error too, masked.
    assert f"user:***@{http_server.url.removeprefix('http://')}" in stderr
    for shown in (json.dumps(envelope), stderr, trace.read_text()):
        assert PASSWORD not in shown
    assert "skipped" in envelope and envelope["skipped"] == ["raises"]


async def test_an_error_message_quoting_a_dsn_is_masked_in_process() -> None:
    builder = AsyncWorkflowBuilder("in_process")
    builder.add_async_code("raises", "raise RuntimeError(f'cannot reach {dsn} or {kv}')")
    envelope = await AsyncLocalRuntime().execute_workflow_async(builder.build(), {
        "dsn": f"redis://:{PASSWORD}@cache:6379/0", "kv": f"host=db password={PASSWORD}"})
    message = envelope["errors"]["raises"]
    assert message.endswith(
        "RuntimeError: cannot reach redis://:***@cache:6379/0 or host=db password=***")
