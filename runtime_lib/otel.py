"""OpenTelemetry spans and metrics of a run: `KFLOW_OTEL=1`, or `--otel` on the CLI.

Imported only when tracing is on, so a run without it never imports `opentelemetry`.
The runtime needs only `opentelemetry-api` (`pip install 'kflow-runtime[otel]'`): spans
and metrics go to the process's global TracerProvider and MeterProvider, which the
application (or `opentelemetry-instrument`) sets up. `--otel` sets them up itself from
the standard `OTEL_*` variables with the OTLP/HTTP exporter (`configure_sdk`), which needs
`opentelemetry-sdk` and `opentelemetry-exporter-otlp-proto-http`.

What is recorded, by name, is listed in docs/observability.md: a span per run named for
the workflow, a child span per node attempt named for the node, a `parallel_map` span
per map with its counts and batch events, the patterns' events, and three metrics.
"""

from __future__ import annotations

import contextvars
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kflow_runtime._version import __version__
from kflow_runtime.observe import NodeInfo, Observer
from kflow_runtime.redact import mask

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics, propagate, trace
    from opentelemetry.trace import Status, StatusCode
except ImportError:  # pragma: no cover - exercised in a subprocess that hides the package
    trace = None  # type: ignore[assignment]

SCOPE = "kflow"

# Names of the metrics (docs/observability.md).
NODE_DURATION = "kflow.node.duration"
NODE_OUTCOMES = "kflow.node.outcomes"
MAP_ITEMS = "kflow.map.items"

# A parallel map's span gets at most about this many batch events, however many batches it
# has: the SDK keeps 128 events per span by default and drops the rest.
MAP_EVENTS = 100

# Set in a worker process told to set up the SDK itself (a Dask worker of an --otel run).
CONFIGURE_KEY = "kflow-otel-configure"


class OtelUnavailable(ImportError):
    """Tracing was asked for, but the OpenTelemetry packages it needs are not installed."""


def require_api() -> None:
    if trace is None:
        raise OtelUnavailable(
            "KFLOW_OTEL=1 asks for OpenTelemetry spans, but opentelemetry-api is not "
            "installed: pip install 'kflow-runtime[otel]' (or unset KFLOW_OTEL)"
        )


# perf_counter() seconds (what observers get) -> epoch nanoseconds (what spans take).
_OFFSET_NS = time.time_ns() - time.perf_counter_ns()


def _ns(at: float) -> int:
    return int(at * 1e9) + _OFFSET_NS


_TRACERS: dict[int, tuple[Any, Any]] = {}
_METERS: dict[int, tuple[Any, Any, Any, Any]] = {}


def _tracer(provider: Any) -> Any:
    key = id(provider)
    if key not in _TRACERS:
        tracer = (provider.get_tracer(SCOPE, __version__) if provider is not None
                  else trace.get_tracer(SCOPE, __version__))
        _TRACERS[key] = (provider, tracer)  # the provider is kept, so its id stays its own
    return _TRACERS[key][1]


def _instruments(provider: Any) -> tuple[Any, Any, Any]:
    key = id(provider)
    if key not in _METERS:
        meter = (provider.get_meter(SCOPE, __version__) if provider is not None
                 else metrics.get_meter(SCOPE, __version__))
        _METERS[key] = (
            provider,
            meter.create_histogram(NODE_DURATION, unit="s",
                                   description="How long a node took, its retries included"),
            meter.create_counter(NODE_OUTCOMES, unit="{node}",
                                 description="Nodes ended, by status (done, recovered, "
                                 "failed, skipped)"),
            meter.create_counter(MAP_ITEMS, unit="{item}",
                                 description="Items a parallel map has finished"),
        )
    return _METERS[key][1:]


class _Attempt:
    __slots__ = ("span", "token", "attempt", "error", "failed_at")

    def __init__(self, span: Any, token: object, attempt: int) -> None:
        self.span = span
        self.token = token
        self.attempt = attempt
        self.error: BaseException | None = None
        self.failed_at: float | None = None


class _Map:
    __slots__ = ("span", "token", "last", "counted", "step")

    def __init__(self, span: Any, token: object, total: int | None) -> None:
        self.span = span
        self.token = token
        self.last = 0  # items done at the last batch event
        self.counted = 0  # items added to the items metric
        self.step = max(1, total // MAP_EVENTS) if total else 1  # items per batch event


class _RunState:
    """One run's open spans (an observer may watch several runs at once: run_many)."""

    def __init__(self, workflow: str, info: NodeInfo, span: Any, token: object) -> None:
        self.workflow = workflow
        self.info = info
        self.span = span
        self.context = trace.set_span_in_context(span)
        self.token = token
        self.var_token: contextvars.Token[_RunState | None] | None = None
        self.started: dict[str, float] = {}
        self.attempts: dict[str, _Attempt] = {}
        self.maps: dict[str, _Map] = {}


# The run this task belongs to: set when a run starts, in the task that runs it, and seen
# by the tasks of its branches and maps, which copy it.
_RUN: contextvars.ContextVar[_RunState | None] = contextvars.ContextVar(
    "kflow_otel_run", default=None
)


class OtelObserver(Observer):
    """Spans and metrics of runs, to the given providers or the global ones.

    One instance may watch any number of runs, at once too: each run's spans live in a
    context variable of the task running it.
    """

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        require_api()
        self.tracer = _tracer(tracer_provider)
        self.duration, self.outcomes, self.items = _instruments(meter_provider)
        self._node_attributes: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._node_labels: dict[tuple[str, str, str], dict[str, str]] = {}

    # -- the run --------------------------------------------------------------------

    def run_started(self, workflow: str, nodes: tuple[str, ...], at: float,
                    info: NodeInfo | None = None, run_id: str | None = None) -> None:
        attributes: dict[str, Any] = {"kflow.workflow": workflow, "kflow.version": __version__,
                                      "kflow.nodes": len(nodes)}
        if run_id is not None:
            attributes["kflow.run_id"] = run_id
        # Parent: the span current where the run was started (a web request's, say).
        span = self.tracer.start_span(workflow, attributes=attributes, start_time=_ns(at))
        token = otel_context.attach(trace.set_span_in_context(span))
        state = _RunState(workflow, info or {}, span, token)
        state.var_token = _RUN.set(state)

    def run_finished(self, envelope: dict[str, Any], at: float) -> None:
        state = _RUN.get()
        if state is None:
            return
        span = state.span
        status = envelope["status"]
        span.set_attribute("kflow.run.status", status)
        if status == "failed":
            failed = ", ".join(envelope["errors"])
            span.set_status(Status(StatusCode.ERROR, mask(f"nodes failed: {failed}")))
        elif status == "cancelled":
            span.set_status(Status(StatusCode.ERROR, "the run was cancelled"))
        self._end_run(state, at)

    def run_failed(self, error: BaseException, at: float) -> None:
        state = _RUN.get()
        if state is None:
            return
        _record(state.span, error, at)
        self._end_run(state, at)

    def _end_run(self, state: _RunState, at: float) -> None:
        for node_id in list(state.maps):
            self.map_finished(node_id, None, [], at)
        for node_id, attempt in list(state.attempts.items()):
            self._close(attempt, at)
            del state.attempts[node_id]
        _detach(state.token)
        state.span.end(end_time=_ns(at))
        if state.var_token is not None:
            try:
                _RUN.reset(state.var_token)
            except ValueError:  # ended from another context than it started in
                _RUN.set(None)

    # -- nodes ------------------------------------------------------------------------

    def _attributes(self, state: _RunState, node_id: str) -> dict[str, Any]:
        """A node's span attributes (attempt 1), made once per node of a module."""
        kind, where = state.info.get(node_id, (None, None))
        key = (state.workflow, node_id, kind, where)
        attributes = self._node_attributes.get(key)
        if attributes is None:
            # Not the workflow: the run's span has it (each attribute costs the SDK ~1 us).
            attributes = {"kflow.node.id": node_id, "kflow.node.attempt": 1}
            if kind is not None:
                attributes["kflow.node.kind"] = kind
            if where is not None:
                attributes["kflow.node.source"] = where
                path, _, line = where.rpartition(":")
                attributes["code.file.path"] = path
                if line.isdigit():
                    attributes["code.line.number"] = int(line)
            if len(self._node_attributes) < 100_000:  # bounded, whatever a process runs
                self._node_attributes[key] = attributes
        return attributes

    def _labels(self, workflow: str, node_id: str, status: str) -> dict[str, str]:
        key = (workflow, node_id, status)
        labels = self._node_labels.get(key)
        if labels is None:
            labels = {"kflow.workflow": workflow, "kflow.node.id": node_id,
                      "kflow.node.status": status}
            if len(self._node_labels) < 100_000:
                self._node_labels[key] = labels
        return labels

    def _start(self, state: _RunState, node_id: str, attempt: int, at: float) -> _Attempt:
        attributes = self._attributes(state, node_id)
        if attempt != 1:
            attributes = {**attributes, "kflow.node.attempt": attempt}
        span = self.tracer.start_span(node_id, context=state.context, attributes=attributes,
                                      start_time=_ns(at))
        # Current while the node runs, so spans the node's own code makes nest under it.
        token = otel_context.attach(trace.set_span_in_context(span))
        entry = state.attempts[node_id] = _Attempt(span, token, attempt)
        return entry

    def _close(self, attempt: _Attempt, at: float) -> None:
        _detach(attempt.token)
        attempt.span.end(end_time=_ns(at))

    def node_started(self, node_id: str, at: float) -> None:
        state = _RUN.get()
        if state is None:
            return
        state.started[node_id] = at
        self._start(state, node_id, 1, at)

    def attempt_started(self, node_id: str, attempt: int, at: float) -> None:
        state = _RUN.get()
        if state is None:
            return
        current = state.attempts.get(node_id)
        if current is not None:
            if current.attempt == attempt:
                return  # attempt 1 began with the node
            current.span.set_attribute("kflow.node.status", "retried")
            self._close(current, current.failed_at or at)
        self._start(state, node_id, attempt, at)

    def attempt_failed(self, node_id: str, error: BaseException, at: float) -> None:
        state = _RUN.get()
        current = state.attempts.get(node_id) if state is not None else None
        if current is None or current.error is error:
            return
        current.error = error
        current.failed_at = at
        _record(current.span, error, at)

    def node_finished(self, node_id: str, status: str, at: float, error: str | None) -> None:
        state = _RUN.get()
        if state is None:
            return
        current = state.attempts.pop(node_id, None)
        if current is None:  # failed before it started (a required input missing)
            current = self._start(state, node_id, 1, at)
            state.attempts.pop(node_id)
        span = current.span
        span.set_attribute("kflow.node.status", status)
        if status == "failed":
            span.set_status(Status(StatusCode.ERROR, error or "failed"))
        elif status == "recovered":
            span.add_event("kflow.fallback", {"kflow.node.id": node_id,
                                              "kflow.fallback.error": error or ""},
                           timestamp=_ns(at))
        labels = self._labels(state.workflow, node_id, status)
        # While the node's span is current: an SDK that keeps exemplars links them to it.
        self.duration.record(at - state.started.pop(node_id, at), labels)
        self.outcomes.add(1, labels)
        self._close(current, at)

    def node_skipped(self, node_id: str, at: float) -> None:
        state = _RUN.get()
        if state is None:
            return
        state.span.add_event("kflow.node.skipped", {"kflow.node.id": node_id},
                             timestamp=_ns(at))
        self.outcomes.add(1, self._labels(state.workflow, node_id, "skipped"))

    # -- inside a node ----------------------------------------------------------------

    def map_started(self, node_id: str, total: int | None, at: float) -> None:
        state = _RUN.get()
        if state is None:
            return
        attempt = state.attempts.get(node_id)
        parent = trace.set_span_in_context(attempt.span) if attempt else state.context
        attributes: dict[str, Any] = {"kflow.workflow": state.workflow, "kflow.node.id": node_id}
        if total is not None:
            attributes["kflow.map.total"] = total
        span = self.tracer.start_span("parallel_map", context=parent, attributes=attributes,
                                      start_time=_ns(at))
        token = otel_context.attach(trace.set_span_in_context(span))
        state.maps[node_id] = _Map(span, token, total)

    def map_progress(self, node_id: str, done: int, total: int | None) -> None:
        state = _RUN.get()
        watched = state.maps.get(node_id) if state is not None else None
        if watched is None:
            return
        size = done - watched.last
        if size <= 0:
            return
        self.items.add(done - watched.counted,
                       {"kflow.workflow": state.workflow, "kflow.node.id": node_id})
        watched.counted = done
        # An event per batch of items finished (a worker's run of items, an executor's chunk),
        # coarsened so that a map has at most about MAP_EVENTS of them.
        if size >= watched.step or done == total:
            watched.span.add_event("kflow.map.batch", {"kflow.map.size": size,
                                                       "kflow.map.done": done})
            watched.last = done
            if total is None:  # unknown length: batches grow with what is done (~80 per 10^6)
                watched.step = max(1, done // 5)

    def map_finished(self, node_id: str, statistics: dict[str, Any] | None,
                     errors: list[dict[str, Any]], at: float) -> None:
        state = _RUN.get()
        watched = state.maps.pop(node_id, None) if state is not None else None
        if watched is None:
            return
        span = watched.span
        timeouts = sum(1 for e in errors if e.get("error_type") == "TimeoutError")
        if statistics is None:
            span.set_status(Status(StatusCode.ERROR, "the map was stopped"))
        else:
            span.set_attributes({
                "kflow.map.items": statistics["successful"] + statistics["failed"],
                "kflow.map.successful": statistics["successful"],
                "kflow.map.errors": statistics["failed"],
                "kflow.map.timeouts": timeouts,
                "kflow.map.batches": statistics.get("batches", 0),
            })
            if errors:
                first = errors[0]
                span.set_status(Status(StatusCode.ERROR, mask(
                    f"{len(errors)} items failed; first: item {first['index']}: "
                    f"{first['error_type']}: {first['error']}")))
        _detach(watched.token)
        span.end(end_time=_ns(at))

    def event(self, node_id: str, name: str, attributes: dict[str, Any]) -> None:
        state = _RUN.get()
        if state is None:
            return
        watched = state.maps.get(node_id)
        attempt = state.attempts.get(node_id)
        span = watched.span if watched is not None else attempt.span if attempt else state.span
        span.add_event(name, {"kflow.node.id": node_id, **attributes})

    def trace_carrier(self, node_id: str) -> dict[str, str] | None:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)  # the current span: the map's, inside a map
        if _CONFIGURED:  # the workers set up the SDK as this process did, same service name
            carrier[CONFIGURE_KEY] = _SERVICE or ""
        return carrier or None


def _record(span: Any, error: BaseException, at: float) -> None:
    """ERROR status and an `exception` event, credentials in URLs masked."""
    message = mask(str(error))
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {message}"
                           if message else type(error).__name__))
    stack = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    span.record_exception(error, {"exception.message": message,
                                  "exception.stacktrace": mask(stack)}, timestamp=_ns(at))


def _detach(token: object) -> None:
    # Every token is detached in the task that attached it (a token of another context
    # would only be logged by the API, never raised).
    otel_context.detach(token)  # type: ignore[arg-type]


_DEFAULT: OtelObserver | None = None


def default_observer() -> OtelObserver:
    """The observer KFLOW_OTEL adds to every run: the global providers, one per process."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = OtelObserver()
    return _DEFAULT


# -- setting up the SDK (--otel) ---------------------------------------------------------

_CONFIGURED = False
_SERVICE: str | None = None

_SDK_HINT = ("pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-http "
             "(or leave out --otel and set up OpenTelemetry yourself, with KFLOW_OTEL=1)")


def configure_sdk(service_name: str | None = None) -> Callable[[], None]:
    """Global TracerProvider and MeterProvider from the standard OTEL_* variables, exporting
    over OTLP/HTTP; returns the function that flushes and shuts them down.

    Read here: OTEL_TRACES_EXPORTER and OTEL_METRICS_EXPORTER ("otlp", the default,
    "console" or "none"), OTEL_SERVICE_NAME (default: `service_name`, the workflow); the
    SDK and exporter read the rest (OTEL_EXPORTER_OTLP_ENDPOINT, _HEADERS, OTEL_RESOURCE_
    ATTRIBUTES, OTEL_TRACES_SAMPLER, OTEL_BSP_*...). Raises OtelUnavailable without them.
    """
    global _CONFIGURED, _SERVICE
    require_api()
    for variable in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = os.environ.get(variable, "").strip()
        if protocol and protocol != "http/protobuf":
            raise OtelUnavailable(
                f"{variable}={protocol}: --otel exports OTLP over HTTP (http/protobuf); "
                f"unset it or set it to http/protobuf (collectors take it on port 4318)"
            )
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import (
            ConsoleMetricExporter,
            PeriodicExportingMetricReader,
        )
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError as exc:
        raise OtelUnavailable(f"--otel needs the OpenTelemetry SDK ({exc}): {_SDK_HINT}") from None

    def exporters(variable: str, otlp: Callable[[], Any], console: Callable[[], Any]) -> list:
        chosen = []
        for name in os.environ.get(variable, "otlp").split(","):
            name = name.strip().lower()
            if name in ("", "none"):
                continue
            if name == "console":
                chosen.append(console())
            elif name == "otlp":
                try:
                    chosen.append(otlp())
                except ImportError as exc:
                    raise OtelUnavailable(
                        f"--otel needs the OTLP/HTTP exporter ({exc}): {_SDK_HINT}"
                    ) from None
            else:
                raise OtelUnavailable(
                    f"{variable}={name!r}: --otel knows 'otlp' (OTLP/HTTP), 'console' and "
                    f"'none'"
                )
        return chosen

    def otlp_spans() -> Any:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()

    def otlp_metrics() -> Any:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter()

    # "console" writes to stderr: stdout is the envelope's.
    span_exporters = exporters("OTEL_TRACES_EXPORTER", otlp_spans,
                               lambda: ConsoleSpanExporter(out=sys.stderr))
    metric_exporters = exporters("OTEL_METRICS_EXPORTER", otlp_metrics,
                                 lambda: ConsoleMetricExporter(out=sys.stderr))
    attributes = {}
    named = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", "")
    if service_name and not named:
        attributes["service.name"] = service_name
    resource = Resource.create(attributes)
    # A signal with no exporter gets no SDK provider: the API's no-op one costs nothing.
    providers: list[Any] = []
    if span_exporters:
        tracer_provider = TracerProvider(resource=resource)
        for exporter in span_exporters:
            tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(tracer_provider)
        providers.append(tracer_provider)
    if metric_exporters:
        meter_provider = MeterProvider(resource=resource, metric_readers=[
            PeriodicExportingMetricReader(exporter) for exporter in metric_exporters
        ])
        metrics.set_meter_provider(meter_provider)
        providers.append(meter_provider)
    _CONFIGURED = True
    _SERVICE = service_name

    def shutdown() -> None:
        # Shutting down flushes: every span and the last metrics are sent before exit. Both
        # at once: against an unreachable collector each waits out its exporter's retries
        # (up to OTEL_EXPORTER_OTLP_TIMEOUT, 10 s by default).
        threads = [threading.Thread(target=p.shutdown, name="kflow-otel-flush")
                   for p in providers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    return shutdown


# -- on a Dask worker ------------------------------------------------------------------------

_WORKER_SHUTDOWN: Callable[[], None] | None = None


@contextmanager
def worker_span(carrier: dict[str, str], name: str, attributes: dict[str, Any]) -> Iterator[None]:
    """A span on a worker process, child of the span `carrier` came from (a parallel map's).

    A worker of an `--otel` run that has no SDK set up sets one up from its own OTEL_*
    variables (and flushes after each chunk, since a worker may be stopped any time)."""
    global _WORKER_SHUTDOWN
    if trace is None:
        yield
        return
    if CONFIGURE_KEY in carrier and not _CONFIGURED:
        try:
            _WORKER_SHUTDOWN = configure_sdk(carrier[CONFIGURE_KEY] or None)
        except OtelUnavailable:
            pass
    parent = propagate.extract(carrier)
    with _tracer(None).start_as_current_span(name, context=parent, attributes=attributes):
        yield
    if _WORKER_SHUTDOWN is not None:
        provider = trace.get_tracer_provider()
        flush = getattr(provider, "force_flush", None)
        if flush is not None:
            flush(5000)
