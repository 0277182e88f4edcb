"""One run of a generated workflow: guarding node calls and building the envelope.

The generated `run()` decides the order (straight-line awaits for a chain,
concurrent tasks for independent branches); `Run.call` guards one node: it
skips it when an upstream node failed, gathers its inputs, applies the timeout,
retry policy and error handler, times it and records the outcome. It never
raises for a node's failure, so a failed branch cannot stop independent ones;
cancellation is the only thing that propagates.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from kflow_runtime.observe import CURRENT, Observer
from kflow_runtime.sourcemap import SourceMap

logger = logging.getLogger("kflow")



class _Missing:
    """Default of an optional input whose fallback is mutable (see kflow.transforms)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

# (input name, source node, keys walked from its output); keys None: the source's
# recovered error message instead of its output.
Wire = tuple[str, str, tuple[str, ...] | None]

# The builder's default per-node timeout; generated calls only spell out other values.
DEFAULT_TIMEOUT = 30.0


class InputError(Exception):
    """The inputs of a run are unusable (missing required inputs, bad JSON)."""


class WiringError(Exception):
    """A connection path does not exist in the source node's output."""


class Fallback:
    """Error handler: the node's output becomes `value` (a fresh copy each time)."""

    def __init__(self, value: Any) -> None:
        self.value = value


class Ignore:
    """Error handler: the node's output becomes None."""


class Recover(Ignore):
    """The primary of a timeout-with-fallback: its failure is recovered downstream,
    where the fallback node runs its code instead (output None here)."""


class LogAndFail:
    """Error handler: log the error, then fail the node as usual."""


class Custom:
    """Error handler: `fn(error=exc, **inputs)` computes the node's output."""

    def __init__(self, fn: Callable[..., Awaitable[Any]], inputs: tuple[str, ...] = ()) -> None:
        self.fn = fn
        self.inputs = inputs


def walk_path(output: Any, path: tuple[str, ...], source: str, target: str, name: str) -> Any:
    value = output
    for depth, key in enumerate(path):
        if isinstance(value, Mapping) and key in value:
            value = value[key]
            continue
        where = ".".join(path[: depth + 1])
        if isinstance(value, Mapping):
            detail = f"keys there: {sorted(map(str, value))}"
        else:
            detail = f"the value there is a {type(value).__name__}, not a dict"
        raise WiringError(
            f"input {name!r}: {source!r} output has no {where!r} ({detail})"
        )
    return value


class Run:
    def __init__(
        self,
        workflow: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        source_map: SourceMap | None = None,
        module_file: str | None = None,
        resources: Any = None,
        close_resources: bool = True,
        nodes: tuple[str, ...] = (),
        observer: Observer | None = None,
    ) -> None:
        self.workflow = workflow
        self.nodes = nodes
        self.observer = observer
        self.inputs: Mapping[str, Any] = dict(inputs or {})
        self.source_map = source_map
        self.module_file = module_file
        self.resources = resources
        self.close_resources = close_resources
        self.run_id = uuid.uuid4().hex
        self.results: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self.skipped: list[str] = []
        self.recovered: dict[str, str] = {}
        self.times: dict[str, float] = {}
        self.attempts: dict[str, int] = {}
        self._bad: set[str] = set()  # failed or skipped: their dependents are skipped
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._started = time.perf_counter()

    async def __aenter__(self) -> Run:
        if self.observer is not None:
            self.observer.run_started(self.workflow, self.nodes, self._started)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self.resources is not None and self.close_resources:
            await self.resources.aclose()
        if self.observer is not None and exc_info[0] is None:
            self.observer.run_finished(self.envelope(), time.perf_counter())

    # -- before any node starts ------------------------------------------------

    def require(self, needs: Mapping[str, tuple[str, ...]]) -> bool:
        """Fail the run before any node starts if required inputs are missing.

        `needs` maps each required input to the nodes whose code reads it. A
        node-specific input (`{"node": {"name": value}}`) satisfies it for that node.
        """
        missing: dict[str, list[str]] = {}
        for name, nodes in needs.items():
            if name in self.inputs:
                continue
            for node_id in nodes:
                own = self.inputs.get(node_id)
                if not (isinstance(own, Mapping) and name in own):
                    missing.setdefault(node_id, []).append(name)
        for node_id, names in missing.items():
            listed = ", ".join(repr(n) for n in names)
            self.errors[node_id] = f"InputError: missing required input {listed}"
            self._bad.add(node_id)
            if self.observer is not None:
                self.observer.node_finished(node_id, "failed", time.perf_counter(),
                                            self.errors[node_id])
        return not missing

    def skip_all(self, node_ids: tuple[str, ...]) -> None:
        for node_id in node_ids:
            if node_id not in self._bad:
                self._skip(node_id)

    # -- scheduling ------------------------------------------------------------

    async def wait(self, *node_ids: str) -> None:
        """Wait until every node in `node_ids` has finished (in any way)."""
        for node_id in node_ids:
            if node_id in self.results or node_id in self._bad:
                continue
            future = self._waiters.get(node_id)
            if future is None:
                future = self._waiters[node_id] = asyncio.get_running_loop().create_future()
            await future

    def _finish(self, node_id: str) -> None:
        future = self._waiters.pop(node_id, None)
        if future is not None and not future.done():
            future.set_result(None)

    def _skip(self, node_id: str) -> None:
        self.skipped.append(node_id)
        self._bad.add(node_id)
        self._finish(node_id)
        if self.observer is not None:
            self.observer.node_skipped(node_id, time.perf_counter())

    # -- one node --------------------------------------------------------------

    async def call(
        self,
        node_id: str,
        fn: Callable[..., Awaitable[Any]],
        *,
        after: tuple[str, ...] = (),
        wires: tuple[Wire, ...] = (),
        inputs: tuple[str, ...] = (),
        resources: tuple[str | tuple[str, str], ...] = (),
        timeout: float | None = DEFAULT_TIMEOUT,
        retry: Any = None,
        on_error: Fallback | Ignore | LogAndFail | Custom | None = None,
    ) -> None:
        """Run one node. `after` lists upstream nodes not already named in `wires`."""
        bad = self._bad
        if bad and (any(dep in bad for dep in after) or any(w[1] in bad for w in wires)):
            self._skip(node_id)
            return
        started = time.perf_counter()
        kwargs: dict[str, Any] = {}
        observer = self.observer
        if observer is not None:
            observer.node_started(node_id, started)
            watching = CURRENT.set((observer, node_id))
        try:
            if inputs:
                self._gather_inputs(node_id, inputs, kwargs)
            results = self.results
            for name, source, path in wires:
                if path is None:  # the source's recovered error (timeout_with_fallback)
                    kwargs[name] = self.recovered.get(source)
                    continue
                value = results[source]
                kwargs[name] = walk_path(value, path, source, node_id, name) if path else value
            for name in resources:
                if isinstance(name, tuple):  # (parameter, resource): code says `db` for "main_db"
                    kwargs[name[0]] = await self.resources.get(name[1])
                else:
                    kwargs[name] = await self.resources.get(name)
            if retry is not None:
                output = await self._retrying(node_id, fn, kwargs, timeout, retry)
            elif timeout is not None:
                async with asyncio.timeout(timeout):
                    output = await fn(**kwargs)
            else:
                output = await fn(**kwargs)
        except Exception as exc:  # noqa: BLE001 - a node's failure is data for the envelope
            await self._failed(node_id, fn, exc, kwargs, on_error, timeout)
        else:
            self.results[node_id] = output
        ended = time.perf_counter()
        self.times[node_id] = ended - started
        self._finish(node_id)
        if observer is not None:
            CURRENT.reset(watching)
            self._observe_end(node_id, ended)

    def _observe_end(self, node_id: str, at: float) -> None:
        assert self.observer is not None
        if node_id in self.errors:
            self.observer.node_finished(node_id, "failed", at, self.errors[node_id])
        elif node_id in self.recovered:
            self.observer.node_finished(node_id, "recovered", at, self.recovered[node_id])
        else:
            self.observer.node_finished(node_id, "done", at, None)

    def _gather_inputs(self, node_id: str, names: tuple[str, ...], kwargs: dict[str, Any]) -> None:
        own = self.inputs.get(node_id)
        own = own if isinstance(own, Mapping) else {}
        for name in names:
            if name in own:
                kwargs[name] = own[name]
            elif name in self.inputs:
                kwargs[name] = self.inputs[name]

    async def _retrying(
        self, node_id: str, fn: Callable[..., Awaitable[Any]], kwargs: dict[str, Any],
        timeout: float | None, retry: Any,
    ) -> Any:
        from kflow_runtime.patterns.retry import retry_call

        async def attempt() -> Any:
            if timeout is None:
                return await fn(**kwargs)
            async with asyncio.timeout(timeout):
                return await fn(**kwargs)

        def count(n: int) -> None:
            self.attempts[node_id] = n
            if self.observer is not None:
                self.observer.attempt_started(node_id, n, time.perf_counter())

        return await retry_call(attempt, retry, on_attempt=count)

    async def _failed(
        self, node_id: str, fn: Callable[..., Any], exc: Exception, kwargs: dict[str, Any],
        on_error: Any, timeout: float | None,
    ) -> None:
        message = self.describe(node_id, fn, exc, timeout)
        if on_error is None or isinstance(on_error, LogAndFail):
            if on_error is not None:
                logger.error("node %r of workflow %r failed: %s", node_id, self.workflow, message)
            self.errors[node_id] = message
            self._bad.add(node_id)
            return
        try:
            if isinstance(on_error, Fallback):
                output = copy.deepcopy(on_error.value)
            elif isinstance(on_error, Ignore):
                output = None
            else:
                handler_kwargs = {k: kwargs[k] for k in on_error.inputs if k in kwargs}
                self._gather_inputs(
                    node_id, tuple(k for k in on_error.inputs if k not in kwargs), handler_kwargs
                )
                output = await on_error.fn(error=exc, **handler_kwargs)
        except Exception as handler_exc:  # noqa: BLE001
            self.errors[node_id] = (
                f"{message}; error handler failed: {self.describe(node_id, on_error.fn, handler_exc, None)}"
            )
            self._bad.add(node_id)
            return
        self.results[node_id] = output
        self.recovered[node_id] = message

    def describe(
        self, node_id: str, fn: Callable[..., Any], exc: BaseException, timeout: float | None
    ) -> str:
        if isinstance(exc, TimeoutError) and not str(exc) and timeout is not None:
            text = f"TimeoutError: node {node_id!r} timed out after {timeout:g}s"
        else:
            text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if self.source_map is not None and self.module_file is not None:
            where = self.source_map.where(self.module_file, exc.__traceback__)
            if where:
                return f"{where}: {text}"
        return text

    # -- the result --------------------------------------------------------------

    def envelope(self) -> dict[str, Any]:
        return {
            "status": "failed" if self.errors else "success",
            "results": self.results,
            "errors": self.errors,
            "skipped": self.skipped,
            "recovered": self.recovered,
            "attempts": self.attempts,
            "execution_times": self.times,
            "total_duration": time.perf_counter() - self._started,
            "workflow": self.workflow,
            "run_id": self.run_id,
        }
