"""The builder writes a frozen IR that round-trips through JSON exactly."""

from __future__ import annotations

import dataclasses

import pytest

from kflow import AsyncRetryPolicy, AsyncWorkflowBuilder, ErrorHandler, Workflow
from kflow.builder import parse_path
from kflow.errors import CompileError


def sample() -> Workflow:
    builder = AsyncWorkflowBuilder("sample", description="a sample")
    builder.add_async_code("a", "result = {'x': {'y': 1}}")
    builder.add_async_code(
        "b",
        "result = v + 1",
        timeout=5,
        retry_policy=AsyncRetryPolicy(max_attempts=2, retry_exceptions=[ValueError, "aiohttp.ClientError"]),
        error_handler=ErrorHandler("fallback", fallback_value={"ok": False, "items": [1, 2]}),
        description="adds one",
    )
    builder.add_connection("a", "result.x.y", "b", "v")
    builder.with_database("db", host="h", password="hunter2")
    return builder.build()


def test_add_returns_node_id_and_resources_chain() -> None:
    builder = AsyncWorkflowBuilder("w")
    assert builder.add_async_code("step1", "result = 1") == "step1"
    assert builder.with_database("db").with_http_client("api").with_cache("cache") is builder


def test_ir_is_frozen_and_hashable() -> None:
    workflow = sample()
    with pytest.raises(dataclasses.FrozenInstanceError):
        workflow.name = "other"  # type: ignore[misc]
    assert hash(workflow) == hash(sample())
    assert workflow == sample()


def test_json_round_trip_is_exact() -> None:
    workflow = sample()
    again = Workflow.from_json(workflow.to_json())
    assert again == workflow
    assert again.to_json() == workflow.to_json()
    assert again.nodes[1].location == workflow.nodes[1].location


def test_locations_point_at_the_add_call_and_code_literal() -> None:
    workflow = sample()
    node = workflow.node("b")
    assert node.location.file == __file__
    assert node.code.exact and node.code.origin.line == node.location.line + 2
    conn = workflow.connections[0]
    assert conn.path == ("x", "y") and conn.location.file == __file__


def test_retry_exceptions_are_dotted_names_and_secrets_stay_out_of_ir() -> None:
    workflow = sample()
    assert workflow.node("b").options.retry.retry_exceptions == ("ValueError", "aiohttp.ClientError")
    assert "hunter2" not in workflow.to_json()
    assert "KFLOW_DB_PASSWORD" in workflow.to_json()


@pytest.mark.parametrize(
    "path, keys",
    [(None, ()), ("result", ()), ("result.a.b", ("a", "b")), ("a.b", ("a", "b")), ("output", ("output",))],
)
def test_connection_paths(path, keys) -> None:
    assert parse_path(path) == keys


def test_duplicate_id_fails_at_the_second_call() -> None:
    builder = AsyncWorkflowBuilder("w")
    builder.add_async_code("a", "result = 1")
    with pytest.raises(CompileError) as info:
        builder.add_async_code("a", "result = 2")
    (diag,) = info.value.diagnostics
    assert diag.code == "KF004" and "duplicate node id 'a'" in diag.message
    assert diag.location.file == __file__
    assert "first added at" in diag.hint


def test_bad_options_fail_at_the_call() -> None:
    builder = AsyncWorkflowBuilder("w")
    with pytest.raises(CompileError, match="timeout must be a positive number"):
        builder.add_async_code("a", "result = 1", timeout=-1)
    with pytest.raises(ValueError, match="handler_type"):
        ErrorHandler("explode")
    with pytest.raises(CompileError, match="not a usable Python name"):
        builder.add_connection("a", None, "b", "not valid")
