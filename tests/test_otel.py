"""OpenTelemetry from generated modules: the span tree, events and metrics a run records,
read back with the real SDK's in-memory exporter and metric reader."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import context as otel_context  # noqa: E402
from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode  # noqa: E402

from kflow import AsyncLocalRuntime, AsyncPatterns, AsyncWorkflowBuilder, ErrorHandler  # noqa: E402
from kflow_runtime import __version__  # noqa: E402
from kflow_runtime.observe import Observers, TraceRecorder  # noqa: E402
from kflow_runtime.otel import OtelObserver  # noqa: E402


class Telemetry:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.observer = OtelObserver(self.tracer_provider, self.meter_provider)

    def finished(self) -> list:
        return list(self.spans.get_finished_spans())

    def by_name(self) -> dict[str, list]:
        out: dict[str, list] = {}
        for span in self.finished():
            out.setdefault(span.name, []).append(span)
        return out

    def metrics(self) -> dict[str, list]:
        data = self.reader.get_metrics_data()
        out: dict[str, list] = {}
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    out[metric.name] = list(metric.data.data_points)
        return out


@pytest.fixture
def telemetry() -> Telemetry:
    return Telemetry()


def module_of(builder: AsyncWorkflowBuilder):
    return AsyncLocalRuntime().module(builder.build())


def mixed_workflow() -> AsyncWorkflowBuilder:
    """A chain, a parallel map, a retried node with a fallback and a failing node."""
    builder = AsyncWorkflowBuilder("orders")
    builder.add_async_code("load", "result = {'items': list(range(8))}")
    builder.add_parallel_map(
        "enrich",
        """
        async def process_item(x):
            if x == 3:
                raise ValueError(f"item {x} is bad")
            if x == 5:
                await asyncio.sleep(5)
            return x * 10
        """,
        max_workers=4, continue_on_error=True, timeout_per_item=0.2,
    )
    builder.add_connection("load", "result.items", "enrich", "items")
    AsyncPatterns.retry_with_backoff(builder, "charge", """
        calls.append(1)
        raise ConnectionError("payment service down")
    """, max_retries=3, initial_backoff=0.001, jitter=False,
        error_handler=ErrorHandler(handler_type="fallback", fallback_value={"charged": False}))
    builder.add_connection("enrich", "results", "charge", "mapped")
    builder.add_async_code("broken", "result = 1 / zero")
    return builder


def run_traced(module, telemetry, inputs):
    return asyncio.run(module.run(inputs, observer=telemetry.observer))


def test_span_tree_of_a_chain_a_map_retries_a_fallback_and_a_failure(telemetry):
    builder = mixed_workflow()
    module = module_of(builder)
    envelope = run_traced(module, telemetry, {"calls": [], "zero": 0})
    assert envelope["status"] == "failed" and set(envelope["errors"]) == {"broken"}
    assert envelope["recovered"].keys() == {"charge"}

    spans = telemetry.by_name()
    (root,) = spans["orders"]
    assert root.parent is None
    assert root.attributes["kflow.workflow"] == "orders"
    assert root.attributes["kflow.run_id"] == envelope["run_id"]
    assert root.attributes["kflow.version"] == __version__
    assert root.attributes["kflow.run.status"] == "failed"
    assert root.status.status_code is StatusCode.ERROR
    trace_id = root.context.trace_id
    assert {s.context.trace_id for s in telemetry.finished()} == {trace_id}

    # One span per node attempt, children of the run, named for the node.
    (load,) = spans["load"]
    assert load.parent.span_id == root.context.span_id
    line = next(n for n, text in enumerate(Path(__file__).read_text().splitlines(), 1)
                if 'add_async_code("load"' in text)
    assert dict(load.attributes) == {
        "kflow.node.id": "load", "kflow.node.attempt": 1,
        "kflow.node.kind": "code", "kflow.node.source": f"test_otel.py:{line}",
        "code.file.path": "test_otel.py", "code.line.number": line,
        "kflow.node.status": "done",
    }
    assert load.status.status_code is StatusCode.UNSET

    # The map: a parallel_map span under the node's, with its counts and batch events.
    (enrich,) = spans["enrich"]
    assert enrich.attributes["kflow.node.kind"] == "parallel_map"
    assert enrich.attributes["kflow.node.status"] == "done"
    (mapped,) = spans["parallel_map"]
    assert mapped.parent.span_id == enrich.context.span_id
    assert mapped.attributes["kflow.map.total"] == 8
    assert mapped.attributes["kflow.map.items"] == 8
    assert mapped.attributes["kflow.map.successful"] == 6
    assert mapped.attributes["kflow.map.errors"] == 2
    assert mapped.attributes["kflow.map.timeouts"] == 1
    assert mapped.status.status_code is StatusCode.ERROR
    batches = [e for e in mapped.events if e.name == "kflow.map.batch"]
    assert batches and sum(e.attributes["kflow.map.size"] for e in batches) == 8
    assert len(batches) < 8 or all(e.attributes["kflow.map.size"] >= 1 for e in batches)

    # Every attempt of the retried node, each failed with an exception event; the last
    # one carries the fallback.
    attempts = sorted(spans["charge"], key=lambda s: s.attributes["kflow.node.attempt"])
    assert [s.attributes["kflow.node.attempt"] for s in attempts] == [1, 2, 3]
    assert envelope["attempts"]["charge"] == 3
    for span in attempts:
        assert span.parent.span_id == root.context.span_id
        assert span.status.status_code is StatusCode.ERROR
        (exception,) = [e for e in span.events if e.name == "exception"]
        assert exception.attributes["exception.type"] == "ConnectionError"
        assert exception.attributes["exception.message"] == "payment service down"
    assert [s.attributes["kflow.node.status"] for s in attempts] == [
        "retried", "retried", "recovered"]
    (fallback,) = [e for e in attempts[-1].events if e.name == "kflow.fallback"]
    assert "ConnectionError: payment service down" in fallback.attributes["kflow.fallback.error"]
    assert attempts[0].end_time <= attempts[1].start_time

    # The failing node: ERROR with the envelope's message (the user's file:line) and the
    # exception event.
    (broken,) = spans["broken"]
    assert broken.status.status_code is StatusCode.ERROR
    assert broken.status.description == envelope["errors"]["broken"]
    assert broken.status.description.startswith(f"{module.SOURCE_MAP.file}:")
    (exception,) = [e for e in broken.events if e.name == "exception"]
    assert exception.attributes["exception.type"] == "ZeroDivisionError"


def test_metrics_by_workflow_and_node(telemetry):
    module = module_of(mixed_workflow())
    run_traced(module, telemetry, {"calls": [], "zero": 0})
    metrics = telemetry.metrics()
    outcomes = {(p.attributes["kflow.node.id"], p.attributes["kflow.node.status"]): p.value
                for p in metrics["kflow.node.outcomes"]}
    assert outcomes == {("load", "done"): 1, ("enrich", "done"): 1,
                        ("charge", "recovered"): 1, ("broken", "failed"): 1}
    durations = {p.attributes["kflow.node.id"]: p for p in metrics["kflow.node.duration"]}
    assert set(durations) == {"load", "enrich", "charge", "broken"}
    assert all(p.count == 1 and p.attributes["kflow.workflow"] == "orders"
               for p in durations.values())
    (items,) = metrics["kflow.map.items"]
    assert items.value == 8 and dict(items.attributes) == {"kflow.workflow": "orders",
                                                            "kflow.node.id": "enrich"}


def test_skipped_nodes_and_missing_inputs(telemetry):
    builder = AsyncWorkflowBuilder("skips")
    builder.add_async_code("first", "result = needed")
    builder.add_async_code("second", "result = value")
    builder.add_connection("first", "result", "second", "value")
    envelope = run_traced(module_of(builder), telemetry, {})
    assert envelope["status"] == "failed" and envelope["skipped"] == ["second"]
    spans = telemetry.by_name()
    (first,) = spans["first"]
    assert first.status.status_code is StatusCode.ERROR
    assert "missing required input 'needed'" in first.status.description
    assert "second" not in spans
    (root,) = spans["skips"]
    (skipped,) = [e for e in root.events if e.name == "kflow.node.skipped"]
    assert skipped.attributes["kflow.node.id"] == "second"


def test_a_run_inside_a_span_is_its_child(telemetry):
    builder = AsyncWorkflowBuilder("child")
    builder.add_async_code("only", "result = 1")
    module = module_of(builder)
    tracer = telemetry.tracer_provider.get_tracer("web")

    async def handler():
        with tracer.start_as_current_span("POST /orders") as request:
            await module.run({}, observer=telemetry.observer)
            # The run restored the context it found.
            assert trace.get_current_span() is request
        return request

    request = asyncio.run(handler())
    (root,) = telemetry.by_name()["child"]
    assert root.parent.span_id == request.get_span_context().span_id
    assert root.context.trace_id == request.get_span_context().trace_id
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_node_code_spans_nest_under_the_node(telemetry):
    builder = AsyncWorkflowBuilder("nesting")
    builder.add_async_code("call", """
        from opentelemetry import trace
        with trace.get_tracer("user").start_as_current_span("user work"):
            result = 1
    """)
    module = module_of(builder)
    previous = trace._TRACER_PROVIDER
    # The node's code uses the global API: route it to this test's provider.
    trace._TRACER_PROVIDER = telemetry.tracer_provider
    try:
        run_traced(module, telemetry, {})
    finally:
        trace._TRACER_PROVIDER = previous
    spans = telemetry.by_name()
    (node,) = spans["call"]
    (user,) = spans["user work"]
    assert user.parent.span_id == node.context.span_id


def test_run_many_gives_each_run_its_own_root(telemetry):
    builder = AsyncWorkflowBuilder("many")
    builder.add_async_code("step", "await asyncio.sleep(0.01)\nresult = n")
    module = module_of(builder)
    envelopes = asyncio.run(module.run_many([{"n": i} for i in range(6)], max_concurrency=3,
                                            observer=telemetry.observer))
    assert [e["status"] for e in envelopes] == ["success"] * 6
    spans = telemetry.by_name()
    roots = spans["many"]
    assert len(roots) == 6 and all(r.parent is None for r in roots)
    assert len({r.context.trace_id for r in roots}) == 6
    assert {r.attributes["kflow.run_id"] for r in roots} == {e["run_id"] for e in envelopes}
    by_run = {r.context.span_id: r.context.trace_id for r in roots}
    for step in spans["step"]:
        assert by_run[step.parent.span_id] == step.context.trace_id


def test_composes_with_the_chrome_trace(telemetry, tmp_path):
    builder = mixed_workflow()
    module = module_of(builder)
    recorder = TraceRecorder(str(tmp_path / "trace.json"))
    envelope = asyncio.run(module.run({"calls": [], "zero": 0},
                                      observer=Observers([recorder, telemetry.observer])))
    assert envelope["status"] == "failed"
    chrome = json.loads((tmp_path / "trace.json").read_text())["traceEvents"]
    assert {e["name"] for e in chrome if e.get("cat") == "node"} == {
        "load", "enrich", "charge", "broken"}
    # The Chrome trace asks for per-stretch batches; the map span still gets coarse events.
    assert sum(1 for e in chrome if e.get("cat") == "batch") >= 2
    (mapped,) = telemetry.by_name()["parallel_map"]
    assert sum(e.attributes["kflow.map.size"] for e in mapped.events
               if e.name == "kflow.map.batch") == 8
    assert len(telemetry.by_name()["charge"]) == 3


def test_a_big_map_has_a_bounded_number_of_batch_events(telemetry):
    builder = AsyncWorkflowBuilder("big")
    builder.add_parallel_map("m", """
        async def process_item(x):
            await asyncio.sleep(0)
            return x
    """, max_workers=8, timeout_per_item=None)
    envelope = asyncio.run(module_of(builder).run({"items": list(range(20000))},
                                                  observer=telemetry.observer))
    assert envelope["status"] == "success"
    (mapped,) = telemetry.by_name()["parallel_map"]
    batches = [e for e in mapped.events if e.name == "kflow.map.batch"]
    assert 1 <= len(batches) <= 101
    assert batches[-1].attributes["kflow.map.done"] == 20000
    assert mapped.attributes["kflow.map.items"] == 20000


def test_pattern_events(telemetry):
    builder = AsyncWorkflowBuilder("patterns")
    AsyncPatterns.rate_limited(builder, "tick", "result = 1", requests_per_second=1,
                               burst_size=1)
    AsyncPatterns.circuit_breaker(builder, "call", """
        raise ConnectionError("down")
    """, failure_threshold=1, reset_timeout=60)
    AsyncPatterns.batch_processor(builder, "store", """
        for item in items:
            batch_results.append(item)
    """, batch_size=4)
    module = module_of(builder)

    async def twice():
        first = await module.run({"items": list(range(10))}, observer=telemetry.observer)
        second = await module.run({"items": []}, observer=telemetry.observer)
        return first, second

    first, second = asyncio.run(twice())
    spans = telemetry.by_name()
    events: dict[str, list] = {}
    for span in telemetry.finished():
        events.setdefault(span.name, []).extend(span.events)
    waits = [e for e in events["tick"] if e.name == "kflow.rate_limit.wait"]
    assert len(waits) == 1 and waits[0].attributes["kflow.rate_limit.wait_s"] > 0
    (change,) = [e for e in events["call"] if e.name == "kflow.breaker.state_change"]
    assert dict(change.attributes) == {"kflow.node.id": "call", "kflow.breaker.from": "closed",
                                       "kflow.breaker.to": "open"}
    done = [e for e in events["store"] if e.name == "kflow.batch.done"]
    assert [e.attributes["kflow.batch.size"] for e in done] == [4, 4, 2]
    assert len(spans["patterns"]) == 2


async def test_cache_hit_miss_and_resource_open_events(telemetry, redis_url, redis_client):
    builder = AsyncWorkflowBuilder("cached").with_cache("cache", url=redis_url)
    AsyncPatterns.cache_aside(builder, "check", "fetch", "store",
                              "result = {'id': user_id}",
                              cache_key_template="kflow_otel_test_{user_id}", ttl_seconds=30)
    module = module_of(builder)
    await redis_client.delete("kflow_otel_test_7")
    miss = await module.run({"user_id": 7}, observer=telemetry.observer)
    hit = await module.run({"user_id": 7}, observer=telemetry.observer)
    await redis_client.delete("kflow_otel_test_7")
    assert miss["status"] == hit["status"] == "success"
    names = [e.name for s in telemetry.finished() if s.name == "check" for e in s.events]
    assert names.count("kflow.cache.miss") == 1 and names.count("kflow.cache.hit") == 1
    opens = [e for s in telemetry.finished() for e in s.events if e.name == "kflow.resource.open"]
    assert len(opens) == 2  # each run opens (and closes) its own client
    assert dict(opens[0].attributes) == {"kflow.node.id": "check",
                                         "kflow.resource.name": "cache",
                                         "kflow.resource.kind": "cache"}


def test_context_is_clean_after_a_failing_run(telemetry):
    builder = AsyncWorkflowBuilder("clean")
    builder.add_async_code("boom", "raise RuntimeError('x')")
    builder.add_async_code("other", "result = 2")
    module = module_of(builder)

    async def main():
        before = otel_context.get_current()
        await module.run({}, observer=telemetry.observer)
        return before, otel_context.get_current()

    before, after = asyncio.run(main())
    assert before == after


async def test_shared_rate_limit_and_breaker_events(telemetry, redis_url, redis_client):
    import uuid

    name = f"otel_{uuid.uuid4().hex[:8]}"
    builder = AsyncWorkflowBuilder(name).with_cache("cache", url=redis_url)
    AsyncPatterns.rate_limited(builder, "tick", "result = 1", requests_per_second=1,
                               burst_size=1, shared="cache")
    AsyncPatterns.circuit_breaker(builder, "call", "raise ConnectionError('down')",
                                  failure_threshold=1, reset_timeout=300, shared="cache")
    module = module_of(builder)
    try:
        for _ in range(2):
            await module.run({}, observer=telemetry.observer)
    finally:
        keys = await redis_client.keys(f"kflow:{name}:*")
        if keys:
            await redis_client.delete(*keys)
    events = [e for s in telemetry.finished() for e in s.events]
    waits = [e for e in events if e.name == "kflow.rate_limit.wait"]
    assert len(waits) == 1 and waits[0].attributes["kflow.rate_limit.wait_s"] > 0
    assert waits[0].attributes["kflow.rate_limit.key"] == f"kflow:{name}:tick:rate"
    (change,) = [e for e in events if e.name == "kflow.breaker.state_change"]
    assert (change.attributes["kflow.breaker.from"], change.attributes["kflow.breaker.to"]) == (
        "closed", "open")
    assert change.attributes["kflow.breaker.key"] == f"kflow:{name}:call:breaker"


def test_breaker_half_open_and_closed_again(telemetry):
    builder = AsyncWorkflowBuilder("breaker")
    AsyncPatterns.circuit_breaker(builder, "call", """
        if fail:
            raise ConnectionError("down")
        result = 1
    """, failure_threshold=1, reset_timeout=0.05)
    module = module_of(builder)

    async def runs():
        await module.run({"fail": True}, observer=telemetry.observer)
        await asyncio.sleep(0.1)  # past the reset timeout: the next call is the trial
        await module.run({"fail": False}, observer=telemetry.observer)

    asyncio.run(runs())
    changes = [(e.attributes["kflow.breaker.from"], e.attributes["kflow.breaker.to"])
               for s in telemetry.finished() for e in s.events
               if e.name == "kflow.breaker.state_change"]
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_timeout_with_fallback_records_the_fallback(telemetry):
    builder = AsyncWorkflowBuilder("fallbacks")
    AsyncPatterns.timeout_with_fallback(
        builder, "primary", "backup", "await asyncio.sleep(5)", "result = 'backup'",
        timeout_seconds=0.05)
    envelope = run_traced(module_of(builder), telemetry, {})
    assert envelope["results"]["backup"] == "backup"
    spans = telemetry.by_name()
    (primary,) = spans["primary"]
    assert primary.attributes["kflow.node.kind"] == "fallback_primary"
    assert primary.attributes["kflow.node.status"] == "recovered"
    (fallback,) = [e for e in primary.events if e.name == "kflow.fallback"]
    assert "timed out after 0.05s" in fallback.attributes["kflow.fallback.error"]
    (exception,) = [e for e in primary.events if e.name == "exception"]
    assert exception.attributes["exception.type"] == "kflow_runtime.run.NodeTimeout"
    (backup,) = spans["backup"]
    assert backup.attributes["kflow.node.kind"] == "fallback"
    assert backup.status.status_code is StatusCode.UNSET


def test_observers_written_before_info_existed_keep_working(telemetry):
    from kflow_runtime.observe import Observer

    class Old(Observer):
        def __init__(self):
            self.seen = []

        def run_started(self, workflow, nodes, at):
            self.seen.append((workflow, nodes))

    builder = AsyncWorkflowBuilder("old")
    builder.add_async_code("only", "result = 1")
    old = Old()
    envelope = asyncio.run(module_of(builder).run({}, observer=Observers([old,
                                                                         telemetry.observer])))
    assert envelope["status"] == "success" and old.seen == [("old", ("only",))]
    (only,) = telemetry.by_name()["only"]
    assert only.attributes["kflow.node.kind"] == "code"


def test_a_map_over_an_iterator_has_a_bounded_number_of_batch_events(telemetry):
    builder = AsyncWorkflowBuilder("stream")
    builder.add_parallel_map("m", """
        async def process_item(x):
            await asyncio.sleep(0)
            return x
    """, max_workers=4, timeout_per_item=None)
    envelope = asyncio.run(module_of(builder).run({"items": iter(range(30000))},
                                                  observer=telemetry.observer))
    assert envelope["status"] == "success"
    (mapped,) = telemetry.by_name()["parallel_map"]
    batches = [e for e in mapped.events if e.name == "kflow.map.batch"]
    assert "kflow.map.total" not in mapped.attributes
    assert 1 <= len(batches) <= 100
    assert mapped.attributes["kflow.map.items"] == 30000


def test_credentials_in_urls_are_masked_in_spans(telemetry):
    builder = AsyncWorkflowBuilder("secrets")
    builder.add_async_code("connect",
                           "raise ConnectionError('cannot reach postgresql://app:hunter2@db/x')")
    run_traced(module_of(builder), telemetry, {})
    (span,) = telemetry.by_name()["connect"]
    (exception,) = [e for e in span.events if e.name == "exception"]
    texts = [span.status.description, *map(str, exception.attributes.values())]
    assert all("hunter2" not in text for text in texts)
    assert "postgresql://app:***@db/x" in exception.attributes["exception.message"]


def test_a_cancelled_run_ends_its_spans(telemetry):
    builder = AsyncWorkflowBuilder("cancelled")
    builder.add_async_code("slow", "ready.append(1)\nawait asyncio.sleep(30)\nresult = 1")
    builder.add_async_code("other", "ready.append(2)\nawait asyncio.sleep(30)\nresult = 2")
    module = module_of(builder)

    async def main():
        before = otel_context.get_current()
        ready: list[int] = []
        task = asyncio.create_task(module.run({"ready": ready}, observer=telemetry.observer))
        while len(ready) < 2:  # both nodes are running
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError) as cancelled:
            await task
        return before, otel_context.get_current(), cancelled.value.envelope

    before, after, envelope = asyncio.run(main())
    assert before == after and envelope["status"] == "cancelled"
    spans = telemetry.by_name()
    (root,) = spans["cancelled"]
    assert root.status.status_code is StatusCode.ERROR
    assert root.attributes["kflow.run.status"] == "cancelled"
    for node in ("slow", "other"):
        (span,) = spans[node]
        assert span.status.status_code is StatusCode.ERROR
        assert "the run was cancelled" in span.status.description
        assert span.parent.span_id == root.context.span_id
