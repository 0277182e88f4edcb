"""Watching a run: the hook behind `--progress` and `--trace`.

`Run` tells an `Observer` when each node starts, retries, finishes or is skipped;
a parallel map inside a node reports its progress and its batches through the
observer of the run it belongs to (found in a context variable, so generated code
passes nothing). With no observer, which is the default, none of this costs more
than one `is None` check per node.
"""

from __future__ import annotations

import contextvars
import json
import os
from collections.abc import Callable, Iterable
from typing import Any

# The observer of the current run and the node running in this task.
CURRENT: contextvars.ContextVar[tuple[Observer, str] | None] = contextvars.ContextVar(
    "kflow_observer", default=None
)


class Observer:
    """Does nothing; subclasses override what they need. Times are `perf_counter()`."""

    def run_started(self, workflow: str, nodes: tuple[str, ...], at: float) -> None: ...
    def node_started(self, node_id: str, at: float) -> None: ...
    def attempt_started(self, node_id: str, attempt: int, at: float) -> None: ...
    def node_finished(self, node_id: str, status: str, at: float, error: str | None) -> None: ...
    def node_skipped(self, node_id: str, at: float) -> None: ...
    def map_progress(self, node_id: str, done: int, total: int | None) -> None: ...
    def map_batch(self, node_id: str, started: float, ended: float, first: int, size: int) -> None:
        ...
    def run_finished(self, envelope: dict[str, Any], at: float) -> None: ...


class Observers(Observer):
    """Several observers as one (a live view and a trace, say)."""

    def __init__(self, observers: Iterable[Observer]) -> None:
        self.observers = list(observers)

    def run_started(self, workflow: str, nodes: tuple[str, ...], at: float) -> None:
        for o in self.observers:
            o.run_started(workflow, nodes, at)

    def node_started(self, node_id: str, at: float) -> None:
        for o in self.observers:
            o.node_started(node_id, at)

    def attempt_started(self, node_id: str, attempt: int, at: float) -> None:
        for o in self.observers:
            o.attempt_started(node_id, attempt, at)

    def node_finished(self, node_id: str, status: str, at: float, error: str | None) -> None:
        for o in self.observers:
            o.node_finished(node_id, status, at, error)

    def node_skipped(self, node_id: str, at: float) -> None:
        for o in self.observers:
            o.node_skipped(node_id, at)

    def map_progress(self, node_id: str, done: int, total: int | None) -> None:
        for o in self.observers:
            o.map_progress(node_id, done, total)

    def map_batch(self, node_id: str, started: float, ended: float, first: int, size: int) -> None:
        for o in self.observers:
            o.map_batch(node_id, started, ended, first, size)

    def run_finished(self, envelope: dict[str, Any], at: float) -> None:
        for o in self.observers:
            o.run_finished(envelope, at)


def map_hooks() -> tuple[Callable[[int, int | None], None] | None,
                         Callable[[float, float, int, int], None] | None]:
    """The progress and batch callbacks for a parallel map in the current node, if watched."""
    current = CURRENT.get()
    if current is None:
        return None, None
    observer, node_id = current
    return (
        lambda done, total: observer.map_progress(node_id, done, total),
        lambda started, ended, first, size: observer.map_batch(
            node_id, started, ended, first, size
        ),
    )


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

    def run_started(self, workflow: str, nodes: tuple[str, ...], at: float) -> None:
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
