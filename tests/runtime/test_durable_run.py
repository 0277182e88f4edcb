"""Durable runs in-process (`AsyncLocalRuntime(checkpoint=...)`): what a resume restores
(outputs, failures, recovered errors), what it runs again, and what a run without a store
leaves alone. A run cancelled mid-way stays resumable, so it stands in for a crash here (the
SIGKILL cases are in tests/test_durable.py)."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from kflow import AsyncLocalRuntime, AsyncWorkflowBuilder, ErrorHandler

LOG = """
import os
with open(os.environ["DURABLE_LOG"], "a") as log:
    log.write("{name}\\n")
"""


def workflow() -> Any:
    builder = AsyncWorkflowBuilder("durable_in_process")
    builder.add_async_code("a", LOG.format(name="a") + "raise ValueError('a is down')",
                           error_handler=ErrorHandler(handler_type="fallback",
                                                      fallback_value={"v": 0}))
    builder.add_async_code("b", LOG.format(name="b") + "raise KeyError('nothing for b')")
    builder.add_async_code("t", LOG.format(name="t") + "result = (1, 2)")  # a tuple: no round trip
    builder.add_async_code(
        "hang",
        LOG.format(name="hang")
        + "if os.environ.get('DURABLE_HANG'):\n    await asyncio.sleep(3600)\nresult = x",
    )
    builder.add_connection("a", "result", "hang", "x")
    # hang starts once t's outcome is stored, so the cancel cannot overtake that commit.
    builder.add_connection("t", "result", "hang", "t")
    return builder.build()


def ran(log: Path) -> Counter[str]:
    return Counter(log.read_text().split()) if log.exists() else Counter()


async def cancelled_run(runtime: AsyncLocalRuntime, wf: Any, log: Path) -> None:
    """Run until 'hang' starts, then cancel: the run stays resumable."""
    task = asyncio.create_task(runtime.execute_workflow_async(wf, {}, run_id="r1"))
    for _ in range(3000):
        if ran(log)["hang"] or task.done():
            break
        await asyncio.sleep(0.01)
    assert not task.done(), task.result()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_resume_restores_outputs_failures_and_recoveries_as_they_were(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = tmp_path / "log"
    monkeypatch.setenv("DURABLE_LOG", str(log))
    monkeypatch.setenv("DURABLE_HANG", "1")
    wf = workflow()
    runtime = AsyncLocalRuntime(checkpoint=store_url)
    await cancelled_run(runtime, wf, log)
    assert "'t': its output (tuple) does not round-trip through JSON" in capsys.readouterr().err

    monkeypatch.delenv("DURABLE_HANG")
    envelope = await runtime.execute_workflow_async(wf, {}, run_id="r1")
    err = capsys.readouterr().err
    assert envelope["resumed"] == ["a", "b"]
    assert envelope["results"]["a"] == {"v": 0}
    assert "ValueError: a is down" in envelope["recovered"]["a"]
    assert "KeyError: 'nothing for b'" in envelope["errors"]["b"]
    assert envelope["results"]["hang"] == {"v": 0}
    assert envelope["results"]["t"] == (1, 2)
    assert envelope["status"] == "failed"
    assert "node 't' runs again: its stored output did not round-trip through JSON" in err
    # a and b restored; t (no round trip) and hang (running at the crash) ran again.
    assert ran(log) == Counter({"a": 1, "b": 1, "t": 2, "hang": 2})

    again = await runtime.execute_workflow_async(wf, {}, run_id="r1")
    assert again["status"] == "failed" and again["resumed"] == ["a", "b"]
    assert "already finished" in capsys.readouterr().err
    assert ran(log) == Counter({"a": 1, "b": 1, "t": 2, "hang": 2})


async def test_a_store_error_reaches_the_caller_as_a_checkpoint_error(tmp_path: Path) -> None:
    from kflow_runtime.checkpoint import StoreUnavailable

    runtime = AsyncLocalRuntime()
    builder = AsyncWorkflowBuilder("w")
    builder.add_async_code("a", "result = 1")
    with pytest.raises(StoreUnavailable, match="does not exist"):
        await runtime.execute_workflow_async(
            builder.build(), {}, checkpoint=str(tmp_path / "missing" / "runs.db"))


async def test_a_map_cancelled_midway_stores_what_finished_and_resumes_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = tmp_path / "log"
    monkeypatch.setenv("DURABLE_LOG", str(log))
    builder = AsyncWorkflowBuilder("durable_map_cancel")
    builder.add_async_code("load", "result = list(range(300))")
    builder.add_parallel_map("m", """
    import os
    async def process_item(i):
        with open(os.environ["DURABLE_LOG"], "a") as log:
            log.write(f"{i}\\n")
        if i >= 200 and os.environ.get("DURABLE_HANG"):
            await asyncio.sleep(3600)
        await asyncio.sleep(0)
        return i * 2
    """, max_workers=4, timeout_per_item=None)
    builder.add_connection("load", "result", "m", "items")
    wf = builder.build()
    runtime = AsyncLocalRuntime(checkpoint=str(tmp_path / "runs.db"))
    monkeypatch.setenv("DURABLE_HANG", "1")
    task = asyncio.create_task(runtime.execute_workflow_async(wf, {}, run_id="m1"))
    while len(ran(log)) < 204:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    monkeypatch.delenv("DURABLE_HANG")
    envelope = await runtime.execute_workflow_async(wf, {}, run_id="m1")
    assert envelope["status"] == "success", envelope["errors"]
    assert envelope["results"]["m"]["results"] == [i * 2 for i in range(300)]
    assert envelope["results"]["m"]["statistics"]["total"] == 300
    counts = ran(log)
    # What finished before the cancel was written as the store closed, except the items
    # that shared a worker's run (a lane of 16) with the 4 items hanging at the cancel.
    assert all(counts[str(i)] == 1 for i in range(200 - 4 * 16)), counts
    assert sum(counts.values()) <= 300 + 4 * 16, counts


async def test_without_a_store_the_envelope_keeps_its_shape(tmp_path: Path) -> None:
    builder = AsyncWorkflowBuilder("w")
    builder.add_async_code("a", "result = 1")
    envelope = await AsyncLocalRuntime().execute_workflow_async(builder.build(), {})
    assert "resumed" not in envelope
    assert not os.listdir(tmp_path)


async def test_a_retried_node_is_restored_with_its_attempts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kflow import AsyncRetryPolicy

    log = tmp_path / "log"
    monkeypatch.setenv("DURABLE_LOG", str(log))
    builder = AsyncWorkflowBuilder("durable_retry")
    flaky = LOG.format(name="flaky") + (
        "if open(os.environ['DURABLE_LOG']).read().count('flaky') < 3:\n"
        "    raise ConnectionError('not yet')\n"
        "result = 'ok'"
    )
    builder.add_async_code("flaky", flaky, retry_policy=AsyncRetryPolicy(
        max_attempts=3, initial_delay=0.001, retry_exceptions=["ConnectionError"]))
    builder.add_async_code(
        "hang", LOG.format(name="hang")
        + "if os.environ.get('DURABLE_HANG'):\n    await asyncio.sleep(3600)\nresult = x")
    builder.add_connection("flaky", "result", "hang", "x")
    wf = builder.build()
    runtime = AsyncLocalRuntime(checkpoint=str(tmp_path / "runs.db"))
    monkeypatch.setenv("DURABLE_HANG", "1")
    await cancelled_run(runtime, wf, log)
    monkeypatch.delenv("DURABLE_HANG")
    envelope = await runtime.execute_workflow_async(wf, {}, run_id="r1")
    assert envelope["status"] == "success", envelope["errors"]
    assert envelope["resumed"] == ["flaky"]
    assert envelope["attempts"] == {"flaky": 3}
    assert envelope["results"]["hang"] == "ok"
    assert ran(log) == Counter({"flaky": 3, "hang": 2})
