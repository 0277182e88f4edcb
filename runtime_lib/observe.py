"""Watching a run: the hook behind `--progress`, `--trace` and `--otel`.

`Run` tells an `Observer` when each node starts, retries, finishes or is skipped;
a parallel map inside a node reports its progress and its batches through the
observer of the run it belongs to (found in a context variable, so generated code
passes nothing). With no observer, which is the default, none of this costs more
than one `is None` check per node.

Patterns report what happens inside a node (a rate-limit wait, a breaker changing state, a
cache hit) with `emit(name, attributes)`, which is one context-variable read when nobody
watches. `KFLOW_OTEL=1` adds an OpenTelemetry observer (kflow_runtime.otel) to every run;
`opentelemetry` is imported only then.
"""

from __future__ import annotations

import contextvars
import inspect
import json
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

# What a generated module tells about each node: id -> (kind, "workflow.py:LINE" or None).
NodeInfo = Mapping[str, tuple[str, str | None]]

# The observer of the current run and the node running in this task.
CURRENT: contextvars.ContextVar[tuple[Observer, str] | None] = contextvars.ContextVar(
    "kflow_observer", default=None
)


class Observer:
    """Does nothing; subclasses override what they need. Times are `perf_counter()`.

    `run_started` gets `info` (node id -> (kind, "file:line")) and `run_id` only if it
    declares them, so observers written before they existed keep working. `map_batch` is
    called only for observers that override it: asking for it makes a parallel map report
    each finished stretch of items, at some cost per item.
    """

    def run_started(self, workflow: str, nodes: tuple[str, ...], at: float,
                    info: NodeInfo | None = None, run_id: str | None = None) -> None: ...
    def node_started(self, node_id: str, at: float) -> None: ...
    def attempt_started(self, node_id: str, attempt: int, at: float) -> None: ...
    def attempt_failed(self, node_id: str, error: BaseException, at: float) -> None:
        """The attempt in flight raised `error` (every failed attempt of a retried node)."""
    def node_finished(self, node_id: str, status: str, at: float, error: str | None) -> None: ...
    def node_skipped(self, node_id: str, at: float) -> None: ...
    def map_started(self, node_id: str, total: int | None, at: float) -> None: ...
    def map_progress(self, node_id: str, done: int, total: int | None) -> None: ...
    def map_batch(self, node_id: str, started: float, ended: float, first: int, size: int) -> None:
        ...
    def map_finished(self, node_id: str, statistics: dict[str, Any] | None,
                     errors: list[dict[str, Any]], at: float) -> None:
        """The map ended; `statistics` None when it was stopped (cancelled, interrupted)."""
    def event(self, node_id: str, name: str, attributes: dict[str, Any]) -> None:
        """Something a pattern did inside the node (see `emit`)."""
    def trace_carrier(self, node_id: str) -> dict[str, str] | None:
        """Trace context for work this node sends to other processes (Dask), if traced."""
        return None
    def run_finished(self, envelope: dict[str, Any], at: float) -> None: ...
    def run_failed(self, error: BaseException, at: float) -> None:
        """The run itself raised (a bug, not a node's failure): no envelope."""


def wants_batches(observer: Observer) -> bool:
    """True if `observer` (or one it combines) overrides `map_batch`."""
    if isinstance(observer, Observers):
        return any(wants_batches(o) for o in observer.observers)
    return type(observer).map_batch is not Observer.map_batch


_EXTRAS: dict[type, tuple[bool, bool]] = {}


def start_run(observer: Observer, workflow: str, nodes: tuple[str, ...], at: float,
              info: NodeInfo | None, run_id: str | None) -> None:
    """`observer.run_started(...)` with the keywords its signature has (older ones lack them)."""
    kind = type(observer)
    takes = _EXTRAS.get(kind)
    if takes is None:
        try:
            params = inspect.signature(observer.run_started).parameters
        except (TypeError, ValueError):
            params = {}
        anything = any(p.kind is p.VAR_KEYWORD for p in params.values())
        takes = _EXTRAS[kind] = (anything or "info" in params, anything or "run_id" in params)
    extra: dict[str, Any] = {}
    if takes[0]:
        extra["info"] = info
    if takes[1]:
        extra["run_id"] = run_id
    observer.run_started(workflow, nodes, at, **extra)


class Observers(Observer):
    """Several observers as one (a live view and a trace, say)."""

    def __init__(self, observers: Iterable[Observer]) -> None:
        self.observers = list(observers)

    def run_started(self, workflow: str, nodes: tuple[str, ...], at: float,
                    info: NodeInfo | None = None, run_id: str | None = None) -> None:
        for o in self.observers:
            start_run(o, workflow, nodes, at, info, run_id)

    def node_started(self, node_id: str, at: float) -> None:
        for o in self.observers:
            o.node_started(node_id, at)

    def attempt_started(self, node_id: str, attempt: int, at: float) -> None:
        for o in self.observers:
            o.attempt_started(node_id, attempt, at)

    def attempt_failed(self, node_id: str, error: BaseException, at: float) -> None:
        for o in self.observers:
            o.attempt_failed(node_id, error, at)

    def node_finished(self, node_id: str, status: str, at: float, error: str | None) -> None:
        for o in self.observers:
            o.node_finished(node_id, status, at, error)

    def node_skipped(self, node_id: str, at: float) -> None:
        for o in self.observers:
            o.node_skipped(node_id, at)

    def map_started(self, node_id: str, total: int | None, at: float) -> None:
        for o in self.observers:
            o.map_started(node_id, total, at)

    def map_progress(self, node_id: str, done: int, total: int | None) -> None:
        for o in self.observers:
            o.map_progress(node_id, done, total)

    def map_batch(self, node_id: str, started: float, ended: float, first: int, size: int) -> None:
        for o in self.observers:
            o.map_batch(node_id, started, ended, first, size)

    def map_finished(self, node_id: str, statistics: dict[str, Any] | None,
                     errors: list[dict[str, Any]], at: float) -> None:
        for o in self.observers:
            o.map_finished(node_id, statistics, errors, at)

    def event(self, node_id: str, name: str, attributes: dict[str, Any]) -> None:
        for o in self.observers:
            o.event(node_id, name, attributes)

    def trace_carrier(self, node_id: str) -> dict[str, str] | None:
        for o in self.observers:
            carrier = o.trace_carrier(node_id)
            if carrier is not None:
                return carrier
        return None

    def run_finished(self, envelope: dict[str, Any], at: float) -> None:
        for o in self.observers:
            o.run_finished(envelope, at)

    def run_failed(self, error: BaseException, at: float) -> None:
        for o in self.observers:
            o.run_failed(error, at)


def map_hooks() -> tuple[Callable[[int, int | None], None] | None,
                         Callable[[float, float, int, int], None] | None]:
    """The progress and batch callbacks for a parallel map in the current node, if watched
    (the batch callback only for an observer that wants batches)."""
    current = CURRENT.get()
    if current is None:
        return None, None
    observer, node_id = current
    on_batch = None
    if wants_batches(observer):
        def on_batch(started: float, ended: float, first: int, size: int) -> None:
            observer.map_batch(node_id, started, ended, first, size)
    return lambda done, total: observer.map_progress(node_id, done, total), on_batch


def emit(name: str, attributes: dict[str, Any]) -> None:
    """Report a pattern's event (stable `name`, e.g. "kflow.cache.hit") to the observer of
    the node running in this task; nothing when the run is not watched."""
    current = CURRENT.get()
    if current is not None:
        observer, node_id = current
        try:
            observer.event(node_id, name, attributes)
        except Exception:  # noqa: BLE001 - watching must never fail the node
            pass


def trace_carrier() -> dict[str, str] | None:
    """The trace context of the node running in this task, to send along with its work."""
    current = CURRENT.get()
    if current is None:
        return None
    observer, node_id = current
    return observer.trace_carrier(node_id)


OTEL_ENV = "KFLOW_OTEL"


def otel_wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """True when $KFLOW_OTEL asks for OpenTelemetry spans (1, true, yes, on)."""
    value = environ.get(OTEL_ENV)
    return value is not None and value.strip().lower() in ("1", "true", "yes", "on")


def with_otel(observer: Observer | None) -> Observer:
    """`observer` plus an OpenTelemetry observer on the global providers (unless it has one).

    Raises kflow_runtime.otel.OtelUnavailable, naming the fix, without opentelemetry-api."""
    from kflow_runtime.otel import OtelObserver, default_observer, require_api

    require_api()
    if observer is None:
        return default_observer()
    inner = observer.observers if isinstance(observer, Observers) else [observer]
    if any(isinstance(o, OtelObserver) for o in inner):
        return observer
    return Observers([*inner, default_observer()])


class TraceRecorder(Observer):
    """Chrome trace-event JSON (opens in Perfetto / chrome://tracing): a span for the
    run, one per node attempt inside a span per node, and one per parallel-map batch."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.events: list[dict[str, Any]] = []
        self.origin = 0.0
        self.tids: dict[str, int] = {}
        self.open_nodes: dict[str, float] = {}
        self.open_attempts: dict[str, tuple[int, float]] = {}
        self.batches = 0

    def _us(self, at: float) -> float:
        return round((at - self.origin) * 1e6, 3)

    def _span(self, name: str, cat: str, tid: int, start: float, end: float, **args: Any) -> None:
        self.events.append({
            "name": name, "cat": cat, "ph": "X", "pid": os.getpid(), "tid": tid,
            "ts": self._us(start), "dur": round(max(end - start, 0) * 1e6, 3), "args": args,
        })

    def run_started(self, workflow: str, nodes: tuple[str, ...], at: float,
                    info: NodeInfo | None = None, run_id: str | None = None) -> None:
        self.origin = at
        self.workflow = workflow
        self.tids = {node: i + 1 for i, node in enumerate(nodes)}
        pid = os.getpid()
        self.events.append({"name": "process_name", "ph": "M", "pid": pid,
                            "args": {"name": f"kflow {workflow}"}})
        for node, tid in [("run", 0), *self.tids.items()]:
            self.events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
                                "args": {"name": node}})

    def node_started(self, node_id: str, at: float) -> None:
        self.open_nodes[node_id] = at

    def attempt_started(self, node_id: str, attempt: int, at: float) -> None:
        self._close_attempt(node_id, at, "failed")
        self.open_attempts[node_id] = (attempt, at)

    def _close_attempt(self, node_id: str, at: float, outcome: str) -> None:
        if node_id in self.open_attempts:
            attempt, started = self.open_attempts.pop(node_id)
            self._span(f"{node_id} attempt {attempt}", "attempt", self.tids[node_id], started, at,
                       attempt=attempt, outcome=outcome)

    def node_finished(self, node_id: str, status: str, at: float, error: str | None) -> None:
        started = self.open_nodes.pop(node_id, at)
        if node_id not in self.open_attempts:
            self.open_attempts[node_id] = (1, started)
        self._close_attempt(node_id, at, status)
        self._span(node_id, "node", self.tids[node_id], started, at, status=status,
                   **({"error": error} if error else {}))

    def map_batch(self, node_id: str, started: float, ended: float, first: int, size: int) -> None:
        # Batches of one map overlap in time, so each is an async slice of its own.
        self.batches += 1
        common = {"cat": "batch", "pid": os.getpid(), "tid": self.tids[node_id],
                  "id": self.batches, "name": f"{node_id} items {first}-{first + size - 1}"}
        self.events.append({**common, "ph": "b", "ts": self._us(started),
                            "args": {"first": first, "size": size}})
        self.events.append({**common, "ph": "e", "ts": self._us(ended)})

    def run_finished(self, envelope: dict[str, Any], at: float) -> None:
        self._span(self.workflow, "run", 0, self.origin, at, status=envelope["status"])
        self.write()

    def write(self) -> None:
        tmp = f"{self.path}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump({"traceEvents": self.events, "displayTimeUnit": "ms"}, handle)
        os.replace(tmp, self.path)
