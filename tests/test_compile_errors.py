"""Bad workflows: one clear message each, at the user's file:line:col, exit 2,
no traceback from inside kflow, and no half-written output file."""

from __future__ import annotations

import os

import pytest


def build(kflowc, path: str, tmp_path) -> tuple[int, str, str]:
    out = tmp_path / "out.py"
    code, stdout, stderr = kflowc("build", path, "-o", str(out))
    assert code == 2, stderr
    assert not out.exists(), "a failed build must not leave an output file"
    assert "Traceback" not in stderr
    return code, stdout, stderr


def test_syntax_error_in_code_string_points_into_the_string(kflowc, write_workflow, tmp_path):
    path = write_workflow(
        '''
        from kailash.workflow import AsyncWorkflowBuilder
        builder = AsyncWorkflowBuilder("bad")
        builder.add_async_code("a", """
            x = 1
            y = (x +
            result = 2
        """)
        '''
    )
    _, _, stderr = build(kflowc, path, tmp_path)
    assert stderr.splitlines()[0] == (
        "workflow.py:5:9: error KF001: node 'a': syntax error in code: '(' was never closed"
    ) or stderr.startswith(f"{path}:5:9: error KF001")
    assert "    y = (x +\n        ^" in stderr
    assert "hint:" in stderr


def test_one_line_code_string_column(kflowc, write_workflow, tmp_path):
    path = write_workflow(
        """
        from kailash.workflow import AsyncWorkflowBuilder
        builder = AsyncWorkflowBuilder("bad")
        builder.add_async_code("a", "result = = 1")
        """
    )
    _, _, stderr = build(kflowc, path, tmp_path)
    assert f"{path}:3:39: error KF001" in stderr
    line, caret = stderr.splitlines()[1:3]
    assert caret.index("^") - 4 == line[4:].index("= 1")


@pytest.mark.parametrize(
    "tail, code, message, line",
    [
        ('builder.add_connection("a", "result", "nope", "x")',
         "KF003", "connection target 'nope' is not a node", 5),
        ('builder.add_connection("b", None, "a", "y")\nbuilder.add_connection("a", None, "b", "x")',
         "KF002", "connections form a cycle", 6),
        ('builder.add_async_code("a", "result = 3")',
         "KF004", "duplicate node id 'a'", 5),
        ('builder.add_async_code("c", "result = 1", required_resources=["dbb"])',
         "KF006", "requires unknown resource 'dbb'", 5),
        ('from kailash.workflow import AsyncRetryPolicy\n'
         'builder.add_async_code("c", "result = 1", retry_policy=AsyncRetryPolicy('
         'retry_exceptions=["aiohttp.NoSuchError"]))',
         "KF005", "retry exception 'aiohttp.NoSuchError' cannot be resolved", 6),
        ('from kailash.workflow import AsyncRetryPolicy\n'
         'builder.add_async_code("c", "result = 1", retry_policy=AsyncRetryPolicy('
         'retry_exceptions=["NotAnError"]))',
         "KF005", "retry exception 'NotAnError' is not a builtin exception", 6),
    ],
)
def test_graph_errors(kflowc, write_workflow, tmp_path, tail, code, message, line):
    path = write_workflow(
        "from kailash.workflow import AsyncWorkflowBuilder\n"
        'builder = AsyncWorkflowBuilder("bad")\n'
        'builder.add_async_code("a", "result = 1")\n'
        'builder.add_async_code("b", "result = x")\n' + tail + "\n"
    )
    _, _, stderr = build(kflowc, path, tmp_path)
    first = stderr.splitlines()[0]
    assert first.startswith(f"{path}:{line}:1: error {code}: "), stderr
    assert message in first
    assert "hint:" in stderr


def test_unknown_node_suggests_the_close_one(kflowc, write_workflow, tmp_path):
    path = write_workflow(
        """
        from kailash.workflow import AsyncWorkflowBuilder
        builder = AsyncWorkflowBuilder("bad")
        builder.add_async_code("fetch", "result = 1")
        builder.add_async_code("process", "result = x")
        builder.add_connection("fecth", None, "process", "x")
        """
    )
    _, _, stderr = build(kflowc, path, tmp_path)
    assert "did you mean 'fetch'?" in stderr


def test_workflow_file_that_raises_names_its_line(kflowc, write_workflow, tmp_path):
    path = write_workflow(
        """
        from kailash.workflow import AsyncWorkflowBuilder
        builder = AsyncWorkflowBuilder("bad")
        1 / 0
        """
    )
    _, _, stderr = build(kflowc, path, tmp_path)
    assert stderr.startswith(f"{path}:3:1: error KF022: {path} raised ZeroDivisionError")


def test_file_without_workflow(kflowc, write_workflow, tmp_path):
    path = write_workflow("x = 1\n")
    _, _, stderr = build(kflowc, path, tmp_path)
    assert "error KF023" in stderr and "defines no workflow" in stderr


def test_failed_build_keeps_previous_output(kflowc, write_workflow, tmp_path):
    out = tmp_path / "out.py"
    out.write_text("previous\n")
    path = write_workflow(
        """
        from kailash.workflow import AsyncWorkflowBuilder
        builder = AsyncWorkflowBuilder("bad")
        builder.add_async_code("a", "result = (")
        """
    )
    code, _, _ = kflowc("build", path, "-o", str(out))
    assert code == 2
    assert out.read_text() == "previous\n"
    assert [p for p in os.listdir(tmp_path) if p.startswith(".kflowc-")] == []
