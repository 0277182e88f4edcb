"""An IR file is input kflowc must not trust: every problem is one located error, exit 2,
nothing written; and what `--emit-ir` writes reads back equal (and hashing alike)."""

from __future__ import annotations

import json

import pytest

from kflow import AsyncPatterns, AsyncRetryPolicy, AsyncWorkflowBuilder, ErrorHandler, Workflow
from kflow.errors import CompileError


def sample() -> Workflow:
    b = AsyncWorkflowBuilder("sample", description="a sample")
    b.add_async_code("a", "result = {'x': {'y': 1}}")
    b.add_async_code("b", "result = v + 1", timeout=5,
                     retry_policy=AsyncRetryPolicy(max_attempts=2, retry_exceptions=[KeyError]),
                     error_handler=ErrorHandler("fallback", fallback_value={"b": 1, "a": [2]}))
    b.add_connection("a", "result.x.y", "b", "v")
    b.add_parallel_map("m", "async def process_item(i):\n    return i", max_workers=3)
    b.add_connection("a", "result", "m", "items")
    AsyncPatterns.circuit_breaker(b, "cb", "result = 1", failure_threshold=2)
    b.with_http_client("api", base_url="https://h", headers={"b": "1", "a": "2"})
    return b.build()


def test_a_workflow_read_back_is_equal_and_hashes_alike():
    workflow = sample()
    again = Workflow.from_json(workflow.to_json())
    assert again == workflow and hash(again) == hash(workflow)
    assert again.to_json() == workflow.to_json()


def good_ir() -> dict:
    return json.loads(sample().to_json())


def broken(change) -> str:
    data = good_ir()
    change(data)
    return json.dumps(data, indent=2)


def _set(path, value):
    def change(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def _drop(path):
    def change(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return change


CASES = [
    ("not json", "{nodes: [", "is not valid JSON"),
    ("a list", "[1, 2]", "holds one JSON object, not a list"),
    ("no version", broken(_drop(["ir_version"])), "no ir_version"),
    ("wrong version", broken(_set(["ir_version"], 1)), "IR version 1 is not supported"),
    ("unknown kind", broken(_set(["nodes", 0, "kind"], "telepathy")),
     "unknown node kind 'telepathy'"),
    ("unknown node in a connection", broken(_set(["connections", 0, "target"], "ghost")),
     "connection target 'ghost' is not a node"),
    ("duplicate id", broken(_set(["nodes", 1, "id"], "a")), "duplicate node id 'a'"),
    ("missing field", broken(_drop(["nodes", 0, "id"])), "Node is missing its field 'id'"),
    ("unknown field", broken(_set(["nodes", 0, "colour"], "red")), "unknown field 'colour'"),
    ("wrong type", broken(_set(["nodes", 2, "params", "max_workers"], "8")),
     "max_workers must be a positive whole number, not '8'"),
    ("out of range", broken(_set(["nodes", 3, "params", "failure_threshold"], 0)),
     "failure_threshold must be a positive whole number"),
    ("infinite", broken(_set(["nodes", 1, "options", "retry", "max_delay"], 1e999)),
     "max_delay must be a finite number"),
    ("not a name", broken(_set(["connections", 0, "input"], "v; import os")),
     "connection input must be a Python name"),
    ("a cycle", broken(lambda d: d["connections"].append(
        {"source": "b", "target": "a", "input": "w", "path": [], "location": None})),
     "connections form a cycle"),
    ("bad location", broken(_set(["nodes", 0, "location", "line"], "one")),
     "location line must be a whole number"),
]


@pytest.mark.parametrize("label, text, message", CASES, ids=[c[0] for c in CASES])
def test_a_malformed_ir_file_is_one_located_error(kflowc, tmp_path, label, text, message):
    ir = tmp_path / "ir.json"
    ir.write_text(text)
    out = tmp_path / "out.py"
    code, stdout, stderr = kflowc("build", str(ir), "-o", str(out))
    assert code == 2, stderr
    assert not out.exists() and stdout == ""
    assert "Traceback" not in stderr
    first = stderr.splitlines()[0]
    assert message in first, stderr
    # At the IR file's line, or (graph errors) where the IR says the user wrote the call.
    assert first.startswith((f"{ir}:", f"{__file__}:")), first


def test_a_missing_ir_file(kflowc, tmp_path):
    code, _, stderr = kflowc("build", str(tmp_path / "nope.json"))
    assert code == 2 and "error KF020: no IR file at" in stderr


def test_the_error_points_at_the_line_of_the_bad_field(tmp_path):
    text = broken(_set(["nodes", 2, "params", "max_workers"], -1))
    with pytest.raises(CompileError) as info:
        Workflow.from_json(text, file="ir.json")
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.code == "KF024"
    assert "nodes[2] ('m').params: max_workers" in diagnostic.message
    line = text.splitlines()[diagnostic.location.line - 1]
    assert line.strip().startswith('"params"')
