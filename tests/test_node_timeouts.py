"""Node timeouts on the run's one watchdog timer (issue 15 part 1): each attempt of each
node is still bounded by its own timeout, whatever ran before it, beside it or inside it."""

from __future__ import annotations

import asyncio

import pytest

from kflow import AsyncLocalRuntime, AsyncPatterns, AsyncWorkflowBuilder


def module(builder: AsyncWorkflowBuilder):
    return AsyncLocalRuntime().module(builder.build())


async def test_a_chain_of_timed_nodes_arms_one_timer(monkeypatch):
    builder = AsyncWorkflowBuilder("chain")
    builder.add_async_code("n0", "await asyncio.sleep(0)\nresult = 0")
    for i in range(1, 200):
        builder.add_async_code(f"n{i}", "await asyncio.sleep(0)\nresult = x + 1")
        builder.add_connection(f"n{i - 1}", "result", f"n{i}", "x")
    compiled = module(builder)
    loop = asyncio.get_running_loop()
    armed = []
    call_later = loop.call_later

    def counting(delay, callback, *args, **kwargs):
        armed.append(delay)
        return call_later(delay, callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_later", counting)
    envelope = await compiled.run({})
    assert envelope["status"] == "success" and envelope["results"]["n199"] == 199
    assert len(armed) == 1  # was one per node: asyncio.timeout per attempt


async def test_a_fan_out_of_timed_nodes_leaves_nothing_for_the_garbage_collector():
    # Each chain task's context holds its watch. A watch that held its task strongly, or a
    # watchdog that kept its watches after the run, made every finished branch (task,
    # coroutine, context, watch) a reference cycle: 7 objects per branch for the collector.
    import gc

    builder = AsyncWorkflowBuilder("fan")
    builder.add_async_code("source", "result = 1")
    for i in range(50):
        builder.add_async_code(f"m{i}", "await asyncio.sleep(0)\nresult = x + 1")
        builder.add_connection("source", "result", f"m{i}", "x")
    compiled = module(builder)
    await compiled.run({})  # warm: first-use caches
    gc.collect()
    gc.disable()
    try:
        envelope = await compiled.run({})
        assert envelope["status"] == "success"
        del envelope
        assert gc.collect() == 0
    finally:
        gc.enable()


async def test_a_shorter_timeout_after_a_longer_one_expires_on_its_own_time():
    builder = AsyncWorkflowBuilder("shorter")
    builder.add_async_code("first", "await asyncio.sleep(0)\nresult = 1", timeout=30)
    builder.add_async_code("second", "await asyncio.sleep(10)\nresult = x", timeout=0.05)
    builder.add_connection("first", "result", "second", "x")
    envelope = await module(builder).run({})
    assert envelope["results"] == {"first": 1}
    assert envelope["errors"]["second"].endswith(
        "TimeoutError: node 'second' timed out after 0.05s")


async def test_concurrent_chains_time_out_each_on_its_own():
    builder = AsyncWorkflowBuilder("wide")
    builder.add_async_code("source", "result = 1")
    builder.add_async_code("slow", "await asyncio.sleep(10)\nresult = x", timeout=0.05)
    builder.add_async_code("quick", "await asyncio.sleep(0.1)\nresult = x + 1", timeout=5)
    builder.add_connection("source", "result", "slow", "x")
    builder.add_connection("source", "result", "quick", "x")
    envelope = await module(builder).run({})
    assert envelope["results"] == {"source": 1, "quick": 2}
    assert list(envelope["errors"]) == ["slow"]
    assert "node 'slow' timed out after 0.05s" in envelope["errors"]["slow"]


async def test_a_run_inside_a_node_keeps_both_runs_timeouts():
    inner = AsyncWorkflowBuilder("inner")
    inner.add_async_code("stuck", "await asyncio.sleep(10)\nresult = 1", timeout=0.05)
    inner_module = module(inner)

    outer = AsyncWorkflowBuilder("outer")
    # The inner run happens in the outer node's task, and uses the timer of its own run.
    outer.add_async_code("calls", "envelope = await inner_run({})\nresult = envelope['errors']")
    outer.add_async_code("then", "await asyncio.sleep(10)\nresult = seen", timeout=0.05)
    outer.add_connection("calls", "result", "then", "seen")
    envelope = await module(outer).run({"inner_run": inner_module.run})
    assert "node 'stuck' timed out after 0.05s" in envelope["results"]["calls"]["stuck"]
    assert "node 'then' timed out after 0.05s" in envelope["errors"]["then"]


async def test_cancelling_a_run_during_a_timed_node_propagates():
    builder = AsyncWorkflowBuilder("cancel")
    builder.add_async_code("wait", "started.set()\nawait asyncio.sleep(60)\nresult = 1")
    started = asyncio.Event()
    task = asyncio.ensure_future(module(builder).run({"started": started}))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError) as raised:
        await task
    assert raised.value.envelope["cancelled"] == ["wait"]


async def test_each_retry_attempt_has_its_own_timeout():
    from kflow import AsyncRetryPolicy

    builder = AsyncWorkflowBuilder("retried")
    # The first two attempts hang and time out; the third answers at once.
    builder.add_async_code(
        "flaky", "calls.append(1)\nif len(calls) < 3:\n    await asyncio.sleep(10)\nresult = len(calls)",
        timeout=0.05, retry_policy=AsyncRetryPolicy(
            max_attempts=3, initial_delay=0.01, retry_exceptions=(TimeoutError,)),
    )
    envelope = await module(builder).run({"calls": []})
    assert envelope["results"] == {"flaky": 3} and envelope["attempts"] == {"flaky": 3}


# -- every node kind: bounded by its timeout -------------------------------------------

HANG = "await asyncio.sleep(30)\nresult = 1"
TIMED_OUT = "node 'stuck' timed out after 0.05s"


def _code(b: AsyncWorkflowBuilder) -> None:
    b.add_async_code("stuck", HANG, timeout=0.05)


def _python_code(b: AsyncWorkflowBuilder) -> None:
    # Sync code in a thread: the timeout bounds the wait for it (the thread ends on its own).
    b.add_node("PythonCodeNode", "stuck", {"code": "import time\ntime.sleep(0.5)\nresult = 1",
                                           "timeout": 0.05})


def _parallel_map(b: AsyncWorkflowBuilder) -> None:
    # A map has no node timeout (it may run for hours); each item is bounded instead.
    b.add_async_code("load", "result = [1, 2, 3]")
    b.add_parallel_map("stuck", "async def process_item(x):\n    await asyncio.sleep(30)\n"
                       "    return x", timeout_per_item=0.05)
    b.add_connection("load", "result", "stuck", "items")


def _rate_limited(b: AsyncWorkflowBuilder) -> None:
    AsyncPatterns.rate_limited(b, "stuck", HANG, requests_per_second=5, timeout=0.05)


def _circuit_breaker(b: AsyncWorkflowBuilder) -> None:
    # The breaker times each call itself: a call that hangs is a failure it counts.
    AsyncPatterns.circuit_breaker(b, "stuck", HANG, failure_threshold=3, timeout=0.05)


def _retry_with_backoff(b: AsyncWorkflowBuilder) -> None:
    AsyncPatterns.retry_with_backoff(b, "stuck", HANG, max_retries=2, initial_backoff=0.01,
                                     retry_on=[ConnectionError], timeout=0.05)


def _batch_processor(b: AsyncWorkflowBuilder) -> None:
    b.add_async_code("load", "result = [1, 2, 3]")
    AsyncPatterns.batch_processor(b, "stuck", "await asyncio.sleep(30)\nbatch_results = items",
                                  batch_size=2, timeout=0.05)
    b.add_connection("load", "result", "stuck", "items")


def _parallel_fetch(b: AsyncWorkflowBuilder) -> None:
    AsyncPatterns.parallel_fetch(b, "stuck", {"slow": HANG}, timeout_per_operation=None,
                                 timeout=0.05)


def _timeout_with_fallback(b: AsyncWorkflowBuilder) -> None:
    AsyncPatterns.timeout_with_fallback(b, "stuck", "cached", HANG, "result = 'cached'",
                                        timeout_seconds=0.05)


# kind -> (builds a node "stuck" that hangs under a 0.05 s timeout, what the run shows).
KINDS = {
    "code": (_code, ("errors", TIMED_OUT)),
    "python_code": (_python_code, ("errors", TIMED_OUT)),
    "parallel_map": (_parallel_map, ("errors", "item timed out after 0.05s")),
    "rate_limited": (_rate_limited, ("errors", TIMED_OUT)),
    "circuit_breaker": (_circuit_breaker, ("results", "'error_type': 'TimeoutError'")),
    "retry_with_backoff": (_retry_with_backoff, ("errors", TIMED_OUT)),
    "batch_processor": (_batch_processor, ("errors", TIMED_OUT)),
    "parallel_fetch": (_parallel_fetch, ("errors", TIMED_OUT)),
    "timeout_with_fallback": (_timeout_with_fallback, ("recovered", TIMED_OUT)),
}


@pytest.mark.parametrize("kind", list(KINDS))
async def test_every_node_kind_is_bounded_by_its_timeout(kind):
    build, (part, shown) = KINDS[kind]
    builder = AsyncWorkflowBuilder(kind)
    build(builder)
    loop = asyncio.get_running_loop()
    started = loop.time()
    envelope = await module(builder).run({})
    assert loop.time() - started < 5
    assert shown in str(envelope[part]["stuck"]), envelope
