"""OpenTelemetry as a user turns it on: `--otel` exporting over OTLP/HTTP to a receiver,
KFLOW_OTEL with and without the packages, and tracing off importing nothing of it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http")

from aiohttp import web  # noqa: E402
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (  # noqa: E402
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: E402
    ExportTraceServiceRequest,
)

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
MAP_WORKFLOW = GOLDEN / "pattern_parallel_map" / "workflow.py"

# Hides packages from a child Python: `python -c BLOCK` then runs the module.
BLOCKER = """
import importlib.abc, runpy, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == p or name.startswith(p + ".") for p in {blocked!r}):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Block())
sys.argv = {argv!r}
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture(scope="module")
def map_module(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("otel") / "pm.py"
    subprocess.run([sys.executable, "-m", "kflow.cli", "build", str(MAP_WORKFLOW), "-o", str(out)],
                   check=True, capture_output=True)
    return out


def env(**extra: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith("OTEL_") and k != "KFLOW_OTEL"}
    environ.update(extra)
    return environ


def run_blocked(module: Path, blocked: tuple[str, ...], *args: str, **environ: str):
    code = BLOCKER.format(blocked=blocked, argv=[str(module), *args])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env(**environ), timeout=60)


class Receiver:
    """An OTLP/HTTP collector: keeps the decoded export requests it is sent."""

    def __init__(self) -> None:
        self.traces: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.content_types: set[str] = set()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        app.router.add_post("/v1/metrics", self._metrics)
        return app

    async def _traces(self, request: web.Request) -> web.Response:
        self.content_types.add(request.content_type)
        self.traces.append(ExportTraceServiceRequest.FromString(await request.read()))
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def _metrics(self, request: web.Request) -> web.Response:
        self.metrics.append(ExportMetricsServiceRequest.FromString(await request.read()))
        return web.Response(body=b"", content_type="application/x-protobuf")

    def spans(self) -> list:
        return [span for request in self.traces for resource in request.resource_spans
                for scope in resource.scope_spans for span in scope.spans]

    def resources(self) -> list[dict]:
        return [{a.key: a.value.string_value for a in r.resource.attributes}
                for request in self.traces for r in request.resource_spans]

    def points(self, name: str) -> list[tuple[dict, int]]:
        """(attributes, value) of each data point of the counter `name`."""
        return [({a.key: a.value.string_value for a in p.attributes}, p.as_int)
                for request in self.metrics for r in request.resource_metrics
                for s in r.scope_metrics for m in s.metrics if m.name == name
                for p in m.sum.data_points]

    def metric_names(self) -> set[str]:
        return {m.name for request in self.metrics for r in request.resource_metrics
                for s in r.scope_metrics for m in s.metrics}


def attributes(span) -> dict:
    out = {}
    for a in span.attributes:
        value = a.value
        out[a.key] = value.string_value if value.HasField("string_value") else value.int_value
    return out


async def test_otel_flag_exports_spans_and_metrics_over_otlp_http(map_module, http_app_server):
    receiver = Receiver()
    endpoint = await http_app_server(receiver.app())
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(map_module), "--otel", "--inputs", '{"greeting": "Hi"}',
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=env(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint),
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    envelope = json.loads(stdout)
    assert envelope["status"] == "success"
    # Flushed before exit: everything has arrived once the process has ended.
    spans = {span.name: span for span in receiver.spans()}
    # The run's span is named for the workflow, here "parallel_map" as its map's span is.
    names = [span.name for span in receiver.spans()]
    assert sorted(names) == ["enrich", "load", "parallel_map", "parallel_map"]
    runs = [s for s in receiver.spans() if not s.parent_span_id]
    (root,) = runs
    assert attributes(root)["kflow.run_id"] == envelope["run_id"]
    assert attributes(root)["kflow.workflow"] == "parallel_map"
    assert {s.trace_id for s in receiver.spans()} == {root.trace_id}
    assert attributes(spans["load"])["kflow.node.source"] == "workflow.py:7"
    (mapped,) = [s for s in receiver.spans() if s.name == "parallel_map" and s.parent_span_id]
    assert mapped.parent_span_id == spans["enrich"].span_id
    assert attributes(mapped)["kflow.map.errors"] == 1
    assert {r["service.name"] for r in receiver.resources()} == {"parallel_map"}
    assert receiver.content_types == {"application/x-protobuf"}
    assert {"kflow.node.duration", "kflow.node.outcomes", "kflow.map.items"} <= (
        receiver.metric_names())
    outcomes = {(attrs["kflow.node.id"], attrs["kflow.node.status"]): value
                for attrs, value in receiver.points("kflow.node.outcomes")}
    assert outcomes == {("load", "done"): 1, ("enrich", "done"): 1}
    assert [(attrs, value) for attrs, value in receiver.points("kflow.map.items")] == [
        ({"kflow.workflow": "parallel_map", "kflow.node.id": "enrich"}, 6)]


async def test_otel_service_name_from_the_environment(map_module, http_app_server):
    receiver = Receiver()
    endpoint = await http_app_server(receiver.app())
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(map_module), "--otel", "--inputs", '{"greeting": "Hi"}',
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=env(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_SERVICE_NAME="billing",
                OTEL_METRICS_EXPORTER="none"),
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    assert {r["service.name"] for r in receiver.resources()} == {"billing"}
    assert receiver.metrics == []


def test_kflow_otel_without_the_api_is_a_clear_error(map_module):
    done = run_blocked(map_module, ("opentelemetry",), "--inputs", '{"greeting": "Hi"}',
                       KFLOW_OTEL="1")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        "error: KFLOW_OTEL=1 asks for OpenTelemetry spans, but opentelemetry-api is not "
        "installed: pip install 'kflow-runtime[otel]' (or unset KFLOW_OTEL)\n")


def test_otel_flag_without_the_sdk_is_a_clear_error(map_module):
    done = run_blocked(map_module, ("opentelemetry.sdk",), "--otel", "--inputs",
                       '{"greeting": "Hi"}')
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: --otel needs the OpenTelemetry SDK (")
    assert done.stderr.endswith(
        "pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-http (or leave out "
        "--otel and set up OpenTelemetry yourself, with KFLOW_OTEL=1)\n")
    assert "Traceback" not in done.stderr


def test_otel_flag_without_the_exporter_is_a_clear_error(map_module):
    done = run_blocked(map_module, ("opentelemetry.exporter",), "--otel", "--inputs",
                       '{"greeting": "Hi"}')
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: --otel needs the OTLP/HTTP exporter (")
    assert "Traceback" not in done.stderr


def test_library_run_with_kflow_otel_and_no_api_raises_a_clear_import_error(map_module):
    script = textwrap.dedent(f"""
        import asyncio, importlib.abc, importlib.util, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "opentelemetry" or name.startswith("opentelemetry."):
                    raise ModuleNotFoundError(name)
        sys.meta_path.insert(0, Block())
        spec = importlib.util.spec_from_file_location("pm", {str(map_module)!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        try:
            asyncio.run(module.run({{"greeting": "Hi"}}))
        except ImportError as exc:
            print(type(exc).__name__, exc)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env(KFLOW_OTEL="1"), timeout=60)
    assert done.stdout.startswith("OtelUnavailable KFLOW_OTEL=1 asks for OpenTelemetry spans")


def test_library_run_honours_kflow_otel_with_the_global_provider(map_module):
    script = textwrap.dedent(f"""
        import asyncio, importlib.util, json
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        spec = importlib.util.spec_from_file_location("pm", {str(map_module)!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        asyncio.run(module.run({{"greeting": "Hi"}}))
        print(json.dumps(sorted(s.name for s in exporter.get_finished_spans())))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env(KFLOW_OTEL="1"), timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["enrich", "load", "parallel_map", "parallel_map"]


def test_tracing_off_imports_no_opentelemetry(map_module):
    script = textwrap.dedent(f"""
        import asyncio, importlib.util, sys
        spec = importlib.util.spec_from_file_location("pm", {str(map_module)!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        envelope = asyncio.run(module.run({{"greeting": "Hi"}}))
        assert envelope["status"] == "success"
        print(sorted(m for m in sys.modules if m.startswith(("opentelemetry", "kflow_runtime.otel"))))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env(KFLOW_OTEL="0"), timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_tracing_off_importtime_shows_no_opentelemetry(map_module):
    done = subprocess.run([sys.executable, "-X", "importtime", str(map_module), "--inputs",
                           '{"greeting": "Hi"}'], capture_output=True, text=True, env=env(),
                          timeout=60)
    assert done.returncode == 0, done.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")]
    assert "kflow_runtime.run" in imported  # the import log is what it should be
    assert not [name for name in imported if "opentelemetry" in name or name.endswith(".otel")]


DASK_WORKFLOW = """\
from kflow import AsyncWorkflowBuilder

builder = AsyncWorkflowBuilder("on_dask")
builder.add_async_code("load", "result = {'items': list(range(40))}")
builder.add_parallel_map("square", '''
async def process_item(x):
    return {"v": x * x, "pid": os.getpid()}
''', max_workers=4, executor="dask")
builder.add_connection("load", "result.items", "square", "items")
workflow = builder.build()
"""


@pytest.fixture(scope="module")
def dask_module(tmp_path_factory) -> Path:
    pytest.importorskip("distributed")
    folder = tmp_path_factory.mktemp("otel_dask")
    (folder / "workflow.py").write_text(DASK_WORKFLOW)
    out = folder / "on_dask.py"
    subprocess.run([sys.executable, "-m", "kflow.cli", "build", str(folder / "workflow.py"),
                    "-o", str(out)], check=True, capture_output=True)
    return out


def test_dask_batches_join_the_runs_trace_in_process_workers(dask_module):
    # Workers in threads of this process: they share its (in-memory) TracerProvider.
    script = textwrap.dedent(f"""
        import asyncio, importlib.util, json, os
        import distributed
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        if __name__ == "__main__":
            with distributed.LocalCluster(n_workers=2, processes=False, threads_per_worker=1,
                                          dashboard_address=":0") as cluster:
                os.environ["KFLOW_DASK_SCHEDULER"] = cluster.scheduler_address
                spec = importlib.util.spec_from_file_location("on_dask", {str(dask_module)!r})
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                envelope = asyncio.run(module.run({{}}))
                assert envelope["status"] == "success", envelope
            print(json.dumps([
                {{"name": s.name, "trace": s.context.trace_id, "span": s.context.span_id,
                  "parent": s.parent.span_id if s.parent else None,
                  "size": s.attributes.get("kflow.map.size")}}
                for s in exporter.get_finished_spans()]))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env(KFLOW_OTEL="1"), timeout=180)
    assert done.returncode == 0, done.stderr
    spans = json.loads(done.stdout.strip().splitlines()[-1])
    (root,) = [s for s in spans if s["name"] == "on_dask"]
    (mapped,) = [s for s in spans if s["name"] == "parallel_map"]
    batches = [s for s in spans if s["name"] == "parallel_map batch"]
    assert len(batches) >= 2 and sum(b["size"] for b in batches) == 40
    assert {s["trace"] for s in spans} == {root["trace"]}
    assert {b["parent"] for b in batches} == {mapped["span"]}


async def test_dask_worker_processes_export_their_batches_with_otel(dask_module,
                                                                   http_app_server):
    # executor="dask" without a scheduler: a LocalCluster of worker processes, which set up
    # the SDK from the OTEL_* variables they inherit and send their spans themselves.
    receiver = Receiver()
    endpoint = await http_app_server(receiver.app())
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(dask_module), "--otel",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=env(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_METRICS_EXPORTER="none"),
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 180)
    assert process.returncode == 0, stderr.decode()
    envelope = json.loads(stdout)
    worker_pids = {r["pid"] for r in envelope["results"]["square"]["results"]}
    assert process.pid not in worker_pids
    spans = receiver.spans()
    (root,) = [s for s in spans if s.name == "on_dask"]
    (mapped,) = [s for s in spans if s.name == "parallel_map"]
    batches = [s for s in spans if s.name == "parallel_map batch"]
    assert sum(attributes(b)["kflow.map.size"] for b in batches) == 40
    assert {attributes(b)["kflow.worker.pid"] for b in batches} <= worker_pids
    assert {s.trace_id for s in spans} == {root.trace_id}
    assert {b.parent_span_id for b in batches} == {mapped.span_id}
    # One service: the workers name themselves as the process that sent them the map.
    assert {r["service.name"] for r in receiver.resources()} == {"on_dask"}


async def test_kflowc_run_with_otel_exports_the_run(http_app_server):
    receiver = Receiver()
    endpoint = await http_app_server(receiver.app())
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kflow.cli", "run", "--quiet", "--otel", str(MAP_WORKFLOW),
        "--inputs", '{"greeting": "Hi"}',
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=env(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_METRICS_EXPORTER="none"),
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    assert json.loads(stdout)["status"] == "success"
    assert sorted(s.name for s in receiver.spans()) == [
        "enrich", "load", "parallel_map", "parallel_map"]


async def test_otel_with_inputs_jsonl_traces_every_run_as_its_own_trace(map_module, tmp_path,
                                                                       http_app_server):
    receiver = Receiver()
    endpoint = await http_app_server(receiver.app())
    lines = tmp_path / "runs.jsonl"
    lines.write_text("".join(json.dumps({"greeting": g}) + "\n" for g in ("Hi", "Yo", "Hey")))
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(map_module), "--otel", "--inputs-jsonl", str(lines),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=env(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_METRICS_EXPORTER="none"),
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    run_ids = [json.loads(line)["run_id"] for line in stdout.decode().splitlines()]
    roots = [s for s in receiver.spans() if not s.parent_span_id]
    assert sorted(attributes(r)["kflow.run_id"] for r in roots) == sorted(run_ids)
    assert len({r.trace_id for r in roots}) == 3
    assert len(receiver.spans()) == 3 * 4


async def test_otel_progress_and_trace_together(map_module, tmp_path, http_app_server):
    receiver = Receiver()
    endpoint = await http_app_server(receiver.app())
    trace_file = tmp_path / "trace.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(map_module), "--otel", "--progress", "--trace", str(trace_file),
        "--inputs", '{"greeting": "Hi"}',
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=env(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_METRICS_EXPORTER="none"),
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    assert json.loads(stdout)["status"] == "success"
    assert "enrich: 6/6 items" in stderr.decode()
    chrome = json.loads(trace_file.read_text())["traceEvents"]
    assert {e["name"] for e in chrome if e.get("cat") == "node"} == {"load", "enrich"}
    assert sorted(s.name for s in receiver.spans()) == [
        "enrich", "load", "parallel_map", "parallel_map"]
