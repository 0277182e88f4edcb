"""Draw docs/otel_trace.svg: the spans one traced run exports, as a collector shows them.

    python docs/otel_trace_svg.py [out.svg]

Builds a small workflow (a chain, a parallel map, a retried node with a fallback), runs it
with an OtelObserver on the SDK's in-memory exporter, and draws the spans as a waterfall:
one row per span, indented under its parent, red when its status is ERROR, a tick per event.
Needs opentelemetry-sdk.
"""

from __future__ import annotations

import asyncio
import sys
from html import escape
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from kflow import AsyncLocalRuntime, AsyncPatterns, AsyncWorkflowBuilder, ErrorHandler
from kflow_runtime.otel import OtelObserver


def workflow():
    builder = AsyncWorkflowBuilder("orders")
    builder.add_async_code("load", "await asyncio.sleep(0.01)\nresult = {'ids': list(range(24))}")
    builder.add_parallel_map("enrich", """
        async def process_item(i):
            await asyncio.sleep(0.004 + (i % 5) * 0.002)
            if i == 13:
                raise ValueError("no profile for 13")
            return {"id": i}
    """, max_workers=6, continue_on_error=True)
    builder.add_connection("load", "result.ids", "enrich", "items")
    AsyncPatterns.retry_with_backoff(builder, "charge", """
        calls.append(1)
        await asyncio.sleep(0.005)
        if len(calls) < 3:
            raise ConnectionError("payment service busy")
        result = {"charged": len(enriched)}
    """, max_retries=3, initial_backoff=0.006, jitter=False,
        error_handler=ErrorHandler(handler_type="fallback", fallback_value={"charged": 0}))
    builder.add_connection("enrich", "results", "charge", "enriched")
    builder.add_async_code("notify", "await asyncio.sleep(0.006)\nresult = charge")
    builder.add_connection("charge", "result", "notify", "charge")
    return builder.build()


def traced_spans() -> list:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    module = AsyncLocalRuntime().module(workflow())
    envelope = asyncio.run(module.run({"calls": []}, observer=OtelObserver(provider)))
    assert envelope["status"] == "success", envelope
    return list(exporter.get_finished_spans())


def ordered(spans: list) -> list[tuple[int, object]]:
    """(depth, span), each span after its parent, siblings by start time."""
    children: dict[int | None, list] = {}
    for span in spans:
        parent = span.parent.span_id if span.parent else None
        children.setdefault(parent, []).append(span)
    out: list[tuple[int, object]] = []

    def walk(parent: int | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s.start_time):
            out.append((depth, span))
            walk(span.context.span_id, depth + 1)

    walk(None, 0)
    return out


def label(span) -> str:
    attributes = span.attributes
    if span.name == "parallel_map":
        return (f"parallel_map  {attributes['kflow.map.items']} items, "
                f"{attributes['kflow.map.errors']} failed")
    if "kflow.node.id" in attributes and "kflow.node.attempt" in attributes:
        return f"{span.name}  attempt {attributes['kflow.node.attempt']}"
    return f"{span.name}  (run)"


def render(spans: list) -> str:
    rows = ordered(spans)
    start = min(s.start_time for s in spans)
    end = max(s.end_time for s in spans)
    width, left, row, top = 960, 300, 26, 40
    scale = (width - left - 20) / max(end - start, 1)
    height = top + row * len(rows) + 70
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="Helvetica, Arial, sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
           '<text x="12" y="24" font-size="14" font-weight="bold">One run of "orders", '
           'as the OpenTelemetry spans kflow records</text>']
    for index, (depth, span) in enumerate(rows):
        y = top + index * row
        x = left + (span.start_time - start) * scale
        w = max((span.end_time - span.start_time) * scale, 2)
        failed = span.status.status_code is StatusCode.ERROR
        colour = "#d9534f" if failed else ("#5b8def" if depth else "#3f5a8a")
        out.append(f'<text x="{12 + depth * 16}" y="{y + 16}">{escape(label(span))}</text>')
        out.append(f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="16" rx="2" '
                   f'fill="{colour}"/>')
        for event in span.events:
            ex = left + (event.timestamp - start) * scale
            out.append(f'<line x1="{ex:.1f}" y1="{y + 2}" x2="{ex:.1f}" y2="{y + 22}" '
                       f'stroke="#222" stroke-width="1.5"><title>{escape(event.name)}'
                       f'</title></line>')
    total_ms = (end - start) / 1e6
    axis = top + row * len(rows) + 16
    out.append(f'<line x1="{left}" y1="{axis}" x2="{width - 20}" y2="{axis}" stroke="#888"/>')
    out.append(f'<text x="{left}" y="{axis + 16}" fill="#555">0 ms</text>')
    out.append(f'<text x="{width - 80}" y="{axis + 16}" fill="#555">{total_ms:.0f} ms</text>')
    out.append(f'<text x="12" y="{axis + 40}" fill="#555">red: status ERROR; ticks: events '
               f'(exception, kflow.map.batch)</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("otel_trace.svg"))
    target.write_text(render(traced_spans()))
    print(f"wrote {target}")
