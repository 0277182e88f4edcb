"""Each pattern, through a whole workflow, as a user sees it in the envelope.

No timing decides a pass: in-flight items and starts are counted, and the only
waits are for a circuit breaker's reset timeout to pass.
"""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from kflow import AsyncLocalRuntime, AsyncPatterns, AsyncWorkflowBuilder, CompileError


async def run(builder_or_workflow, inputs=None, runtime=None):
    workflow = (builder_or_workflow.build() if isinstance(builder_or_workflow, AsyncWorkflowBuilder)
                else builder_or_workflow)
    return await (runtime or AsyncLocalRuntime()).execute_workflow_async(workflow, inputs or {})


class InFlight:
    """Counts items in flight, and the most at once."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    def enter(self) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        self.now -= 1


MAP_CODE = """
    async def process_item(item):
        counter.enter()
        await asyncio.sleep(0)
        counter.leave()
        if item % 10 == 3:
            raise ValueError(f"bad item {item}")
        return item * 2
"""


def map_workflow(continue_on_error: bool) -> AsyncWorkflowBuilder:
    builder = AsyncWorkflowBuilder("map")
    builder.add_parallel_map("double", MAP_CODE, max_workers=50,
                             continue_on_error=continue_on_error)
    return builder


async def test_parallel_map_100k_items_bounded_ordered_and_accounted():
    counter = InFlight()
    items = list(range(100_000))
    envelope = await run(map_workflow(True), {"items": items, "counter": counter})
    assert envelope["status"] == "success"
    output = envelope["results"]["double"]
    assert counter.peak == 50
    assert output["results"] == [i * 2 for i in items if i % 10 != 3]
    assert len(output["errors"]) == 10_000
    # MAP_CODE is not a literal at the call: its errors are placed at the call's line.
    assert output["errors"][0] == {"index": 3, "item": 3, "error": "bad item 3",
                                   "error_type": "ValueError", "where": "test_patterns.py:52"}
    assert [e["index"] for e in output["errors"]] == [i for i in items if i % 10 == 3]
    assert len(output["results"]) + len(output["errors"]) == len(items)
    assert output["statistics"]["total"] == 100_000


async def test_parallel_map_without_continue_on_error_fails_with_a_summary():
    envelope = await run(map_workflow(False), {"items": list(range(100)), "counter": InFlight()})
    assert envelope["status"] == "failed"
    message = envelope["errors"]["double"]
    assert "items failed" in message and "ValueError" in message


async def test_parallel_map_item_timeout_is_an_error_record():
    builder = AsyncWorkflowBuilder("slow_items")
    builder.add_parallel_map("m", """
        async def process_item(item):
            if item == 1:
                await asyncio.sleep(30)
            return item
    """, timeout_per_item=0.05, continue_on_error=True)
    envelope = await run(builder, {"items": [0, 1, 2]})
    output = envelope["results"]["m"]
    assert output["results"] == [0, 2]
    assert [(e["index"], e["error_type"]) for e in output["errors"]] == [(1, "TimeoutError")]


async def test_sync_process_item_runs_off_the_event_loop():
    builder = AsyncWorkflowBuilder("sync_items")
    builder.add_parallel_map("m", """
        def process_item(item):
            return threading.get_ident()
    """, max_workers=4)
    envelope = await run(builder, {"items": list(range(8)), "threading": threading})
    idents = envelope["results"]["m"]["results"]
    assert threading.get_ident() not in idents


def square_with_pid(item):
    return {"square": item * item, "pid": os.getpid()}


async def test_process_executor_runs_in_other_processes():
    builder = AsyncWorkflowBuilder("processes")
    builder.add_parallel_map("m", square_with_pid, max_workers=2, executor="process")
    envelope = await run(builder, {"items": list(range(20))})
    assert envelope["status"] == "success", envelope["errors"]
    results = envelope["results"]["m"]["results"]
    assert [r["square"] for r in results] == [i * i for i in range(20)]
    assert os.getpid() not in {r["pid"] for r in results}


def test_process_executor_cannot_use_per_run_inputs():
    builder = AsyncWorkflowBuilder("bad")
    builder.add_parallel_map("m", "def process_item(item):\n    return item + offset\n",
                             executor="process")
    with pytest.raises(CompileError, match="cannot use per-run inputs or resources"):
        AsyncLocalRuntime().module(builder.build())


def test_map_code_without_process_item_is_a_compile_error():
    builder = AsyncWorkflowBuilder("bad")
    builder.add_parallel_map("m", "def handle(item):\n    return item\n")
    with pytest.raises(CompileError, match="does not define process_item"):
        AsyncLocalRuntime().module(builder.build())


def test_lambda_cannot_be_inlined():
    builder = AsyncWorkflowBuilder("bad")
    with pytest.raises(CompileError, match="a lambda cannot be inlined"):
        builder.add_parallel_map("m", lambda item: item)


async def test_rate_limit_holds_across_runs():
    builder = AsyncWorkflowBuilder("limited")
    AsyncPatterns.rate_limited(builder, "tick", "starts.append(time.monotonic())\nresult = 1",
                               requests_per_second=20, burst_size=3)
    workflow = builder.build()
    runtime = AsyncLocalRuntime()
    starts: list[float] = []
    for _ in range(4):
        await asyncio.gather(*(run(workflow, {"starts": starts}, runtime) for _ in range(5)))
    assert len(starts) == 20
    starts.sort()
    for i, first in enumerate(starts):
        for window in (0.05, 0.1, 0.25, 0.5):
            inside = sum(1 for t in starts[i:] if t - first < window)
            assert inside <= 3 + 20 * window + 1e-9, (window, inside)


async def test_circuit_breaker_opens_fails_fast_and_half_opens():
    builder = AsyncWorkflowBuilder("breaker")
    AsyncPatterns.circuit_breaker(builder, "call", """
        calls.append(1)
        if fail:
            raise ConnectionError("down")
        result = {"value": 1}
    """, failure_threshold=2, reset_timeout=0.2)
    workflow = builder.build()
    runtime = AsyncLocalRuntime()
    calls: list[int] = []

    async def once(fail):
        return (await run(workflow, {"calls": calls, "fail": fail}, runtime))["results"]["call"]

    first = await once(True)
    assert first == {"success": False, "error": "down", "error_type": "ConnectionError",
                     "circuit_state": "closed"}
    second = await once(True)
    assert second["circuit_state"] == "open" and len(calls) == 2
    fast = await once(False)  # open: fails fast, code not run
    assert fast["success"] is False and fast["error_type"] == "CircuitOpenError"
    assert len(calls) == 2
    await asyncio.sleep(0.25)  # past reset_timeout: one trial call decides
    trial = await once(False)
    assert trial == {"value": 1, "success": True} and len(calls) == 3
    assert (await once(False))["success"] is True


async def test_timeout_with_fallback_on_a_raising_primary():
    builder = AsyncWorkflowBuilder("fallbacks")
    AsyncPatterns.timeout_with_fallback(
        builder, "primary", "backup", "raise ConnectionError('primary down')",
        "result = {'from': 'backup', 'ask': ask}", timeout_seconds=1.0)
    envelope = await run(builder, {"ask": 7})
    assert envelope["status"] == "success"
    assert envelope["results"] == {"primary": None, "backup": {"from": "backup", "ask": 7}}
    assert "ConnectionError: primary down" in envelope["recovered"]["primary"]


async def test_retry_with_backoff_counts_attempts_and_only_retries_listed_errors():
    builder = AsyncWorkflowBuilder("retries")
    AsyncPatterns.retry_with_backoff(builder, "flaky", """
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("again")
        result = len(calls)
    """, max_retries=4, initial_backoff=0.001, retry_on=[ConnectionError])
    AsyncPatterns.retry_with_backoff(builder, "wrong", """
        wrong_calls.append(1)
        raise KeyError("not retried")
    """, max_retries=4, initial_backoff=0.001, retry_on=[ConnectionError])
    envelope = await run(builder, {"calls": [], "wrong_calls": (wrong := [])})
    assert envelope["results"]["flaky"] == 3
    assert envelope["attempts"] == {"flaky": 3, "wrong": 1}
    assert "KeyError" in envelope["errors"]["wrong"] and len(wrong) == 1


async def test_batch_processor_1003_items_in_21_batches():
    builder = AsyncWorkflowBuilder("batches")
    AsyncPatterns.batch_processor(builder, "store", """
        seen.append(len(items))
        for item in items:
            batch_results.append(item)
    """, batch_size=50)
    seen: list[int] = []
    envelope = await run(builder, {"items": list(range(1003)), "seen": seen})
    output = envelope["results"]["store"]
    assert output["batches"] == 21 and output["processed_count"] == 1003
    assert sorted(output["results"]) == list(range(1003))
    assert seen == [50] * 20 + [3]


async def test_parallel_fetch_one_slow_operation_times_out_alone():
    builder = AsyncWorkflowBuilder("fetches")
    AsyncPatterns.parallel_fetch(builder, "fetch", {
        "slow": "await asyncio.sleep(30)\nresult = 'late'",
        "fast": "result = 'ok'",
        "also": "result = 2",
    }, timeout_per_operation=0.05)
    envelope = await run(builder)
    output = envelope["results"]["fetch"]
    assert output["successful"] == {"fast": "ok", "also": 2}
    assert list(output["failed"]) == ["slow"] and "TimeoutError" in output["failed"]["slow"]
