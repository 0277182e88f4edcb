"""What OpenTelemetry costs per node on the 1,000-node chain: off, and on with the SDK.

    python bench/bench_otel.py [--nodes 1000] [--rounds 15]

Variants, interleaved in every round (so drift on a shared machine hits all alike):
- baseline: the module with what tracing added taken out of its way (no NODE_INFO, the
  per-run KFLOW_OTEL check patched to False): today's cost before this feature;
- off: the module as generated, KFLOW_OTEL unset (what every user pays);
- on: an OtelObserver on an SDK TracerProvider with a BatchSpanProcessor (its exporter
  drops the spans, so no network time is counted) and an SDK MeterProvider;
- on, spans only: the same without a MeterProvider (the API's no-op meter);
- any observer: the base `Observer()` (all no-ops), what watching a run costs at all;
- otel, no-op providers: the OtelObserver on the API's no-op providers, kflow's own work;
- SDK floor: what the SDK alone costs for one node's telemetry, without kflow: a span
  started and ended with the same attributes on the same providers, one histogram record
  and one counter add, as many times as there are nodes (on an event loop, like a run).
Prints, per variant, microseconds per node as median and min-max over the rounds, wall and
CPU time, and the ratios off/baseline and (on - off) per node. Needs opentelemetry-sdk.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import kflow_runtime.run as run_module
from kflow import AsyncLocalRuntime, AsyncWorkflowBuilder
from kflow_runtime.observe import Observer
from kflow_runtime.otel import OtelObserver


class Dropping(SpanExporter):
    def export(self, spans):  # noqa: ANN001, ANN201
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def chain(n: int):
    builder = AsyncWorkflowBuilder("chain")
    builder.add_async_code("n0", "result = 0")
    for i in range(1, n):
        builder.add_async_code(f"n{i}", "result = x + 1")
        builder.add_connection(f"n{i - 1}", "result", f"n{i}", "x")
    return builder.build()


def measure(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    asyncio.run(fn())
    return time.perf_counter() - wall, time.process_time() - cpu


def summary(samples: list[float], nodes: int) -> str:
    us = [s / nodes * 1e6 for s in samples]
    return f"{statistics.median(us):6.2f} us ({min(us):6.2f}-{max(us):6.2f})"


def main(nodes: int, rounds: int) -> None:
    os.environ.pop("KFLOW_OTEL", None)
    module = AsyncLocalRuntime().module(chain(nodes))
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Dropping(), max_queue_size=8192))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    observer = OtelObserver(tracer_provider, meter_provider)
    program = module.PROGRAM
    info = program.info
    checks = run_module.otel_wanted

    async def baseline():
        program.info = None
        run_module.otel_wanted = lambda: False
        try:
            return await module.run({})
        finally:
            program.info = info
            run_module.otel_wanted = checks

    async def off():
        return await module.run({})

    async def on():
        envelope = await module.run({}, observer=observer)
        assert envelope["status"] == "success"
        return envelope

    spans_only = OtelObserver(tracer_provider, metrics.NoOpMeterProvider())

    async def on_spans():
        return await module.run({}, observer=spans_only)

    tracer = tracer_provider.get_tracer("floor")
    meter = meter_provider.get_meter("floor")
    histogram, counter = meter.create_histogram("floor.h"), meter.create_counter("floor.c")
    attributes = {"kflow.node.id": "n1", "kflow.node.attempt": 1,
                  "kflow.node.kind": "code", "kflow.node.source": "workflow.py:5",
                  "code.file.path": "workflow.py", "code.line.number": 5}
    labels = {"kflow.workflow": "chain", "kflow.node.id": "n1", "kflow.node.status": "done"}

    async def floor():
        for _ in range(nodes):
            span = tracer.start_span("n1", attributes=attributes)
            span.set_attribute("kflow.node.status", "done")
            histogram.record(0.001, labels)
            counter.add(1, labels)
            span.end()

    plain = Observer()

    async def any_observer():
        return await module.run({}, observer=plain)

    noop = OtelObserver(trace.NoOpTracerProvider(), metrics.NoOpMeterProvider())

    async def otel_noop():
        return await module.run({}, observer=noop)

    variants = {"baseline": baseline, "off": off, "on (SDK, batch exporter)": on,
                "on, spans only": on_spans, "any observer": any_observer,
                "otel, no-op providers": otel_noop, "SDK floor (no kflow)": floor}
    for fn in variants.values():  # warm up: imports, caches
        measure(fn)
    wall: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            w, c = measure(fn)
            wall[name].append(w)
            cpu[name].append(c)
    tracer_provider.shutdown()
    print(f"{nodes}-node chain, {rounds} rounds interleaved; per node, median (min-max)")
    for name in variants:
        print(f"  {name:26s} wall {summary(wall[name], nodes)}   cpu {summary(cpu[name], nodes)}")
    on = "on (SDK, batch exporter)"
    for clock, samples in (("wall", wall), ("cpu", cpu)):
        ratios = [o / b for o, b in zip(samples["off"], samples["baseline"], strict=True)]
        extra = [(t - o) / nodes * 1e6 for t, o in zip(samples[on], samples["off"], strict=True)]
        own = [(t - o - f) / nodes * 1e6 for t, o, f in zip(
            samples[on], samples["off"], samples["SDK floor (no kflow)"], strict=True)]
        print(f"  {clock}: off/baseline {_spread(ratios, '.3f')}; on - off per node "
              f"{_spread(extra, '.2f')} us; of which kflow's own (on - off - SDK floor) "
              f"{_spread(own, '.2f')} us")


def _spread(values: list[float], spec: str) -> str:
    return (f"median {format(statistics.median(values), spec)} "
            f"({format(min(values), spec)}..{format(max(values), spec)})")

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    main(args.nodes, args.rounds)
