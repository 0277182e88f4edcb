"""BaseExceptions in node code fail that node; only a cancellation of the run from outside
propagates, and then nothing the run started outlives it (issue 11, part 1)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from kflow import AsyncLocalRuntime, AsyncPatterns, AsyncWorkflowBuilder, compile_workflow


class Abort(BaseException):
    """A user-defined BaseException, as some libraries define (gevent's Timeout, ...)."""


def two_branches(failing_code: str) -> AsyncWorkflowBuilder:
    """`bad` raises; `slow`, an independent branch, finishes after it; `after` depends on bad."""
    builder = AsyncWorkflowBuilder("base_exceptions")
    builder.add_async_code("bad", failing_code)
    builder.add_async_code("after", "result = value")
    builder.add_connection("bad", "result", "after", "value")
    builder.add_async_code("slow", "await asyncio.sleep(0.05)\nresult = 'slow done'")
    return builder


async def run(builder: AsyncWorkflowBuilder, inputs: dict | None = None) -> dict:
    return await AsyncLocalRuntime().execute_workflow_async(builder.build(), inputs or {})


@pytest.mark.parametrize(("code", "expected"), [
    ("raise asyncio.CancelledError()",
     "CancelledError (raised by the node's own code; the run itself was not cancelled)"),
    ("raise SystemExit(3)", "SystemExit: 3 (raised by the node's code: a node cannot end the "
     "process; it fails instead)"),
    ("import sys\nsys.exit('bye')", "SystemExit: bye (raised by the node's code"),
    ("raise Abort('stop')", "Abort: stop (a BaseException raised by the node's code: it fails "
     "this node only)"),
    ("raise GeneratorExit()", "GeneratorExit (a BaseException raised by the node's code"),
])
async def test_a_base_exception_in_node_code_fails_that_node_only(code: str, expected: str):
    envelope = await run(two_branches(code), {"Abort": Abort})

    assert envelope["status"] == "failed"
    assert set(envelope["errors"]) == {"bad"}
    message = envelope["errors"]["bad"]
    assert expected in message, message
    assert envelope["skipped"] == ["after"]
    assert envelope["results"] == {"slow": "slow done"}


async def test_a_base_exception_is_reported_at_the_users_line(write_workflow):
    path = write_workflow('''
        from kflow import AsyncWorkflowBuilder
        builder = AsyncWorkflowBuilder("exits")
        builder.add_async_code("bad", """
        x = 1
        raise SystemExit(x)
        """)
        workflow = builder.build()
    ''')
    from kflow.loader import load_file

    workflow, _ = load_file(path)
    envelope = await AsyncLocalRuntime().execute_workflow_async(workflow, {})
    assert envelope["errors"]["bad"].startswith("workflow.py:5: SystemExit: 1"), envelope


async def test_error_handlers_apply_to_a_base_exception():
    from kflow import ErrorHandler

    builder = AsyncWorkflowBuilder("handled")
    builder.add_async_code("bad", "raise SystemExit(2)",
                           error_handler=ErrorHandler("fallback", fallback_value={"ok": False}))
    envelope = await run(builder)
    assert envelope["status"] == "success"
    assert envelope["results"] == {"bad": {"ok": False}}
    assert "SystemExit: 2" in envelope["recovered"]["bad"]


async def test_a_retry_policy_does_not_retry_system_exit():
    from kflow import AsyncRetryPolicy

    builder = AsyncWorkflowBuilder("no_retry")
    builder.add_async_code("bad", "raise SystemExit(1)",
                           retry_policy=AsyncRetryPolicy(max_attempts=3, initial_delay=0))
    envelope = await run(builder)
    assert envelope["attempts"] == {"bad": 1}
    assert "SystemExit: 1" in envelope["errors"]["bad"]


async def test_base_exceptions_in_parallel_fetch_and_circuit_breaker_fail_that_operation():
    builder = AsyncWorkflowBuilder("patterns")
    AsyncPatterns.parallel_fetch(builder, "fetch", {
        "ok": "result = 1",
        "exits": "raise SystemExit(4)",
        "cancels": "raise asyncio.CancelledError()",
    }, timeout_per_operation=5)
    AsyncPatterns.circuit_breaker(builder, "breaker", "raise Abort('no')", failure_threshold=2)
    envelope = await run(builder, {"Abort": Abort})

    assert envelope["status"] == "success", envelope["errors"]
    fetch = envelope["results"]["fetch"]
    assert fetch["successful"] == {"ok": 1}
    line = test_base_exceptions_in_parallel_fetch_and_circuit_breaker_fail_that_operation \
        .__code__.co_firstlineno  # each failure starts with the user's line (issue 14.5)
    assert fetch["failed"] == {"exits": f"test_node_base_exceptions.py:{line + 4}: SystemExit: 4",
                               "cancels": f"test_node_base_exceptions.py:{line + 5}: "
                                          "CancelledError"}
    breaker = envelope["results"]["breaker"]
    assert breaker["success"] is False and breaker["error_type"] == "Abort"


def test_independent_chains_run_under_one_task_group():
    builder = two_branches("result = 1")
    source = compile_workflow(builder.build()).source
    assert "await ctx.concurrently(" in source
    assert "asyncio.gather(" not in source


# --------------------------------------------------------------------------- from outside


def watched_workflow() -> AsyncWorkflowBuilder:
    """Two chains and a parallel_fetch, all parked until cancelled; each records its end."""
    builder = AsyncWorkflowBuilder("watched")
    builder.add_async_code("first", "result = 1")
    park = """
try:
    started.append(NAME)
    await asyncio.Event().wait()
finally:
    ended.append(NAME)
result = None
"""
    builder.add_async_code("a", park.replace("NAME", "'a'"))
    builder.add_connection("first", "result", "a", "x")
    builder.add_async_code("b", park.replace("NAME", "'b'"))
    AsyncPatterns.parallel_fetch(builder, "fetch", {
        "one": park.replace("NAME", "'fetch.one'"),
        "two": park.replace("NAME", "'fetch.two'"),
    }, timeout_per_operation=None)
    return builder


async def test_cancelling_a_run_cancels_and_awaits_every_task_it_started():
    started: list[str] = []
    ended: list[str] = []
    before = asyncio.all_tasks()
    task = asyncio.create_task(run(watched_workflow(), {"started": started, "ended": ended}))
    while len(started) < 4:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError) as raised:
        await task

    # Every node's clean-up ran before run() raised, and no task of the run is left.
    assert sorted(ended) == ["a", "b", "fetch.one", "fetch.two"]
    assert asyncio.all_tasks() - before == set()
    # What the run did is still known: the CLI prints it.
    envelope = raised.value.envelope
    assert envelope["status"] == "cancelled"
    assert sorted(envelope["cancelled"]) == ["a", "b", "fetch"]
    assert envelope["results"] == {"first": 1}
    for node in ("a", "b", "fetch"):
        assert envelope["errors"][node] == (
            "CancelledError: the run was cancelled while this node was running")


async def test_a_sibling_chain_does_not_outlive_a_run_cancelled_from_outside():
    # The old `asyncio.gather` let a chain run on when another chain raised; now one
    # cancellation reaches them all, and run() returns only once they are done.
    started: list[str] = []
    ended: list[str] = []
    builder = AsyncWorkflowBuilder("siblings")
    builder.add_async_code("quick", "started.append('quick')\nawait asyncio.sleep(3600)")
    builder.add_async_code("long", """
started.append('long')
try:
    await asyncio.sleep(3600)
finally:
    ended.append('long')
""")
    task = asyncio.create_task(run(builder, {"started": started, "ended": ended}))
    while len(started) < 2:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ended == ["long"]


def test_a_generated_module_prints_the_envelope_when_node_code_calls_sys_exit(tmp_path: Path):
    import subprocess

    builder = two_branches("import sys\nsys.exit(5)")
    module = tmp_path / "out.py"
    module.write_text(compile_workflow(builder.build()).source)
    done = subprocess.run([sys.executable, str(module)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    envelope = json.loads(done.stdout)
    assert envelope["results"] == {"slow": "slow done"}
    assert "SystemExit: 5" in envelope["errors"]["bad"]
    assert "Traceback" not in done.stderr
