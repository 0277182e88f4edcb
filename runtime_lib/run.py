"""One run of a generated workflow: guarding node calls and building the envelope.

The generated `run()` decides the order (straight-line awaits for a chain,
concurrent tasks for independent branches); `Run.call` guards one node: it
skips it when an upstream node failed, gathers its inputs, applies the timeout,
retry policy and error handler, times it and records the outcome. It never
raises for a node's failure, so a failed branch cannot stop independent ones.
Whatever node code raises fails that node, BaseExceptions included (`SystemExit`,
a `CancelledError` it raised itself); only a cancellation of the run from outside
(task cancel, Ctrl-C, SIGTERM) propagates, and then `Run.concurrently` cancels and
awaits every sibling chain, so nothing the run started outlives it.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import functools
import logging
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any

from kflow_runtime.observe import CURRENT, NodeInfo, Observer, otel_wanted, start_run
from kflow_runtime.redact import mask
from kflow_runtime.sourcemap import SourceMap, register

logger = logging.getLogger("kflow")

# (checkpoint session, node id) while a node of a durable run runs: parallel_map and
# batch_process record their items through it (kflow_runtime.durable). None otherwise.
CHECKPOINTING: ContextVar[tuple[Any, str] | None] = ContextVar("kflow_checkpoint", default=None)


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

# Seconds a timed-out node's code gets to unwind (roll back, release a connection) before it
# is cancelled again; cleanup stuck on a dead server therefore cannot hold the run.
CLEANUP_GRACE = 1.0


def is_cancellation(exc: BaseException) -> bool:
    """True when `exc` ends the run from outside rather than failing one node.

    That is Ctrl-C (KeyboardInterrupt) and a CancelledError while the current task is being
    cancelled (`task.cancel()`, a signal handler, a TaskGroup stopping). A CancelledError
    that code raised itself, with nobody cancelling its task, is an ordinary failure.
    """
    if isinstance(exc, KeyboardInterrupt):
        return True
    if isinstance(exc, asyncio.CancelledError):
        task = asyncio.current_task()
        return task is None or task.cancelling() > 0
    return False


class NodeTimeout(TimeoutError):
    """A node attempt ran past its timeout (a TimeoutError, so retry policies on it apply).

    `resource` names the resource the node was still opening, if any.
    """

    def __init__(self, message: str, resource: str | None = None) -> None:
        super().__init__(message)
        self.resource = resource


class _Watch:
    """Node attempts under a timeout in one task, as the run's `_Watchdog` sees them: one
    per chain task, reused by each of its nodes (Run.call's fast path), or one per attempt
    (the general path and retries)."""

    __slots__ = ("watchdog", "task", "expires", "cancels", "opening")

    def __init__(self, watchdog: _Watchdog, task: asyncio.Task) -> None:
        self.watchdog = watchdog
        # Weak: a chain task's context holds its watch, and a strong reference back would
        # make every finished chain task (its coroutine, its context) a cycle that only the
        # garbage collector frees. A wide fan-out then paid for full collections mid-run.
        self.task = weakref.ref(task)
        self.expires = _NEVER  # time.perf_counter() the running attempt expires at; idle: inf
        self.cancels = 0  # cancels this attempt's expiry sent
        self.opening: str | None = None  # the resource being opened, for the message

    def settle(self, exc: BaseException | None, node_id: str, delay: float) -> None:
        """The attempt at `node_id` that expiry cancelled ended (raising `exc`): take our
        cancels back, and raise NodeTimeout from `exc` when they are what stopped it."""
        task, cancels, opening = self.task(), self.cancels, self.opening
        assert task is not None  # the attempt runs in it
        self.cancels, self.opening = 0, None
        for _ in range(cancels):
            remaining = task.uncancel()
        if remaining == 0 and isinstance(exc, asyncio.CancelledError):
            message = f"node {node_id!r} timed out after {delay:g}s"
            if opening is not None:
                message += f" while opening resource {opening!r}"
            if cancels > 1:
                message += f" (its clean-up was cut short after {CLEANUP_GRACE:g}s more)"
            raise NodeTimeout(message, opening) from exc


class _Watchdog:
    """The timeouts of every running node of one run, with one timer for all of them.

    `asyncio.timeout(delay)` per node arms and cancels a timer per node attempt, about
    three quarters of what a trivial node costs. Here a node attempt only writes when it
    expires into its chain's `_Watch` (from the clock read its timing makes anyway), and the
    run's single timer, armed for the earliest expiry it knows of, looks at the watches when
    it fires: it cancels the task of each attempt past its expiry and re-arms for the next.
    An attempt that finishes first leaves the timer as it is; it then finds nothing due and
    re-arms. As with asyncio.timeout, expiry cancels the node's task and the attempt turns
    the CancelledError into NodeTimeout (`cancel`, then `uncancel`), so a cancel from outside
    still propagates; a task that is already being cancelled from outside is left to that
    cancel. Expiry is not the end of it: the cancelled code gets CLEANUP_GRACE seconds to
    unwind and is cancelled again each time they pass. asyncpg, cancelled mid-query on a
    frozen server, waits for the server to confirm the cancel for as long as
    `command_timeout` (None: forever); a second cancel interrupts that wait.
    """

    __slots__ = ("_watches", "_handle", "at")

    def __init__(self) -> None:
        self._watches: set[_Watch] = set()
        self._handle: asyncio.TimerHandle | None = None
        self.at = _NEVER  # perf_counter() time the timer fires at

    def chain_watch(self) -> _Watch:
        """The current task's watch, reused by every node the task runs."""
        task = asyncio.current_task()
        assert task is not None
        watch = _Watch(self, task)
        self._watches.add(watch)
        _CHAIN_WATCH.set(watch)
        return watch

    def start(self, delay: float, now: float) -> _Watch:
        """A watch of its own for one attempt, begun at `now`, in the current task."""
        task = asyncio.current_task()
        assert task is not None
        watch = _Watch(self, task)
        watch.expires = now + delay
        self._watches.add(watch)
        if watch.expires < self.at:
            self.arm(watch.expires)
        return watch

    def stop(self, watch: _Watch, exc: BaseException | None, node_id: str, delay: float
             ) -> None:
        self._watches.discard(watch)
        watch.expires = _NEVER
        if watch.cancels:
            watch.settle(exc, node_id, delay)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.at = _NEVER
        self._watches.clear()  # each refers back to us: freed now, not by the collector

    def arm(self, at: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self.at = at
        self._handle = asyncio.get_running_loop().call_later(
            max(at - time.perf_counter(), 0.0), self._fire
        )

    def _fire(self) -> None:
        self._handle, self.at = None, _NEVER
        now = time.perf_counter()
        earliest = _NEVER
        for watch in list(self._watches):
            if watch.expires <= now:  # mid-attempt, so its task is alive
                task = watch.task()
                if watch.cancels or not task.cancelling():
                    watch.cancels += 1
                    task.cancel()
                watch.expires = now + CLEANUP_GRACE
            earliest = min(earliest, watch.expires)
        if earliest < _NEVER:
            self.arm(earliest)


_NEVER = float("inf")


class _Finished:
    """An awaitable that is already done: `await` returns None without suspending."""

    __slots__ = ()

    def __await__(self) -> Any:
        return iter(())


_FINISHED = _Finished()

# The chain watch of the current task (a ContextVar: far cheaper than asyncio.current_task()
# per node). Run.concurrently starts its chain tasks with none, so each makes its own.
_CHAIN_WATCH: contextvars.ContextVar[_Watch | None] = contextvars.ContextVar(
    "kflow_chain_watch", default=None
)


class _Deadline:
    """`async with _Deadline(watchdog, node_id, delay)`: one attempt under the watchdog
    (the general path of Run.call and retries; the fast path does the same inline)."""

    __slots__ = ("_watchdog", "_node", "_delay", "_watch")

    def __init__(self, watchdog: _Watchdog, node_id: str, delay: float) -> None:
        self._watchdog = watchdog
        self._node = node_id
        self._delay = delay

    async def __aenter__(self) -> _Watch:
        self._watch = self._watchdog.start(self._delay, time.perf_counter())
        return self._watch

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._watchdog.stop(self._watch, exc, self._node, self._delay)


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
        info: NodeInfo | None = None,
        durable: Mapping[str, tuple[str, tuple[str, ...]]] | None = None,
        checkpoint: Any = None,
        run_id: str | None = None,
    ) -> None:
        self.workflow = workflow
        self.nodes = nodes
        self.info = info  # node id -> (kind, "workflow.py:LINE"), for observers
        if otel_wanted():  # once per run; tracing off costs nothing per node
            from kflow_runtime.observe import with_otel

            observer = with_otel(observer)
        self.observer = observer
        self.inputs: Mapping[str, Any] = dict(inputs or {})
        self.source_map = source_map
        self.module_file = module_file
        if source_map is not None and module_file is not None:
            register(module_file, source_map)
        self.resources = resources
        self.close_resources = close_resources
        self.run_id = run_id or uuid.uuid4().hex
        # Durable runs: `checkpoint` is the store's URL (or a Store); once the run is entered,
        # `self.checkpoint` is its RunSession. None: no checkpoint code runs or is imported.
        self.durable = durable or {}
        self.checkpoint: Any = None
        self._store = checkpoint
        self._stored_envelope: dict[str, Any] | None = None  # the run id had finished
        self._final: dict[str, Any] | None = None  # the envelope a durable run stored
        self.results: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self.skipped: list[str] = []
        self.recovered: dict[str, str] = {}
        self.times: dict[str, float] = {}
        self.attempts: dict[str, int] = {}
        self.cancelled: list[str] = []  # running when the run was cancelled
        self.partial: dict[str, Any] = {}  # what a failed node had done (batch accounting)
        self._interrupted = False
        self._read: set[str] = set()  # the inputs some node's call looked for
        self._bad: set[str] = set()  # failed or skipped: their dependents are skipped
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._committing: set[str] = set()  # ended, outcome not yet stored: not done yet
        self._watchdog = _Watchdog()  # every node timeout of the run, on one timer
        self._started = time.perf_counter()

    async def __aenter__(self) -> Run:
        if self._store is not None:
            from kflow_runtime import durable

            # Raises a CheckpointError (busy, other inputs, store down) before anything runs.
            self.checkpoint = await durable.open_session(self, self._store)
            self._stored_envelope = self.checkpoint.finished
        if self.observer is not None:
            start_run(self.observer, self.workflow, self.nodes, self._started, self.info,
                      self.run_id)
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        interrupted = exc is not None and isinstance(
            exc, asyncio.CancelledError | KeyboardInterrupt
        )
        self._watchdog.close()
        watch = _CHAIN_WATCH.get()
        if watch is not None and watch.watchdog is self._watchdog:
            _CHAIN_WATCH.set(None)  # the caller's task keeps nothing of this run
        if interrupted:
            self._interrupt()
        try:
            if self.resources is not None and self.close_resources:
                await self.resources.aclose()
            if self.checkpoint is not None:
                await self._end_checkpoint(exc is None)
        finally:
            if interrupted:
                # The caller (the CLI) still prints what the run did before it was stopped.
                exc.envelope = self.envelope()
            if exc is None and self.inputs and not self.errors and not self.skipped:
                _warn_misspelt(self.workflow, self.inputs, self._read, self.nodes)
            if self.observer is not None:
                try:
                    if exc is None or interrupted:
                        self.observer.run_finished(self.envelope(), time.perf_counter())
                    else:
                        self.observer.run_failed(exc, time.perf_counter())
                except Exception:  # noqa: BLE001 - a broken observer must not hide the run
                    logger.warning("observer failed at the end of the run", exc_info=True)

    async def _end_checkpoint(self, finished: bool) -> None:
        """Store the envelope of a run that ended (not one cancelled: it stays resumable),
        then give up the run id."""
        session = self.checkpoint
        try:
            if finished and self._stored_envelope is None:
                envelope = self.envelope()
                await session.finish(envelope)
                self._final = envelope
        finally:
            await session.close()

    def _interrupt(self) -> None:
        """The run was cancelled: nodes that never started count as skipped."""
        self._interrupted = True
        done = {*self.results, *self.errors, *self.skipped}
        self.skipped.extend(node for node in self.nodes if node not in done)

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
            self.errors[node_id] = (f"InputError: missing required input {listed}"
                                    f"{_misspelt(names, self.inputs, needs, self.nodes)}")
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

    async def concurrently(self, *chains: Callable[[Run], Awaitable[None]]) -> None:
        """Run independent chains at once, each in its own task.

        Chains never raise for a node's failure. If one raises anyway (the run is cancelled,
        or a bug), the others are cancelled and awaited before this returns or raises, so no
        task of the run outlives it.
        """
        token = _CHAIN_WATCH.set(None)  # each chain task makes its own
        try:
            async with asyncio.TaskGroup() as group:
                for chain in chains:
                    group.create_task(chain(self))
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None
        finally:
            _CHAIN_WATCH.reset(token)

    def wait(self, *node_ids: str) -> Awaitable[None]:
        """Wait until every node in `node_ids` has finished (in any way).

        Not a coroutine: when they all have (as in a wide fan-out, where each branch waits
        for a source that is long done), awaiting it costs no coroutine per branch. A node
        whose outcome a durable run is still storing has not finished yet."""
        if self._stored_envelope is not None:
            return _FINISHED  # a finished durable run: nothing runs, nothing to wait for
        results, bad, committing = self.results, self._bad, self._committing
        for node_id in node_ids:
            if (node_id not in results and node_id not in bad) or node_id in committing:
                return self._wait(node_ids)
        return _FINISHED

    async def _wait(self, node_ids: tuple[str, ...]) -> None:
        for node_id in node_ids:
            if (node_id in self.results or node_id in self._bad) and (
                node_id not in self._committing
            ):
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
        if (retry is None and on_error is None and self.observer is None
                and self.checkpoint is None):
            # The fast path: nobody watches, nothing to retry or recover, nothing to
            # checkpoint, so a node costs little more than awaiting it (issue 15). What it
            # records is what the general path below records.
            started = time.perf_counter()
            kwargs: dict[str, Any] = {}
            try:
                if inputs:
                    self._gather_inputs(node_id, inputs, kwargs)
                if wires:
                    results = self.results
                    for name, source, path in wires:
                        if path is None:
                            kwargs[name] = self.recovered.get(source)
                        elif path:
                            kwargs[name] = walk_path(results[source], path, source, node_id, name)
                        else:
                            kwargs[name] = results[source]
                if timeout is None:
                    if resources:
                        await self._open(resources, kwargs, None, None)
                    output = await fn(**kwargs)
                else:
                    watch = _CHAIN_WATCH.get()
                    if watch is None or watch.watchdog is not self._watchdog:
                        watch = self._watchdog.chain_watch()
                    expires = watch.expires = started + timeout
                    if expires < watch.watchdog.at:
                        watch.watchdog.arm(expires)
                    try:
                        if resources:
                            await self._open(resources, kwargs, timeout, watch)
                        output = await fn(**kwargs)
                    except BaseException as exc:
                        watch.expires = _NEVER
                        if watch.cancels:
                            watch.settle(exc, node_id, timeout)
                        watch.opening = None
                        raise
                    watch.expires = _NEVER
                    if watch.cancels:
                        watch.settle(None, node_id, timeout)
            except BaseException as exc:  # noqa: BLE001 - as below
                if is_cancellation(exc):
                    self._cancelled(node_id, started, None)
                    raise
                await self._failed(node_id, fn, exc, kwargs, None, timeout)
            else:
                self.results[node_id] = output
            self.times[node_id] = time.perf_counter() - started
            if self._waiters:
                self._finish(node_id)
            return
        checkpoint = self.checkpoint
        if checkpoint is not None:
            if self._restore(node_id, retry is not None):
                return
            durable_node = CHECKPOINTING.set((checkpoint, node_id))
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
            if retry is not None:
                output = await self._retrying(node_id, fn, kwargs, resources, timeout, retry)
            elif timeout is not None:
                # The timeout covers opening the node's resources, and its own clean-up.
                async with _Deadline(self._watchdog, node_id, timeout) as deadline:
                    if resources:
                        await self._open(resources, kwargs, timeout, deadline)
                    output = await fn(**kwargs)
            else:
                if resources:
                    await self._open(resources, kwargs, None, None)
                output = await fn(**kwargs)
        except BaseException as exc:  # noqa: BLE001 - a node's failure is data for the envelope
            if is_cancellation(exc):
                self._cancelled(node_id, started, observer)
                if observer is not None:
                    CURRENT.reset(watching)
                if checkpoint is not None:
                    CHECKPOINTING.reset(durable_node)
                raise
            if observer is not None and retry is None:  # a retried node reports each attempt
                observer.attempt_failed(node_id, exc, time.perf_counter())
            await self._failed(node_id, fn, exc, kwargs, on_error, timeout)
        else:
            self.results[node_id] = output
        ended = time.perf_counter()
        self.times[node_id] = ended - started
        if checkpoint is not None:
            CHECKPOINTING.reset(durable_node)
            # Stored before anything downstream starts: a crash never leaves a dependent's
            # outcome stored without this one.
            await self._commit(node_id)
        self._finish(node_id)
        if observer is not None:
            CURRENT.reset(watching)
            self._observe_end(node_id, ended)

    # -- durable runs (kflow_runtime.durable) ------------------------------------

    def _restore(self, node_id: str, retried: bool) -> bool:
        """Put back the node's stored outcome instead of running it; False: run it."""
        if self._stored_envelope is not None:
            return True  # the run had finished: its stored envelope is the answer
        restored = self.checkpoint.restored(node_id)
        if restored is None:
            return False
        if restored.status == "failed":
            self.errors[node_id] = restored.error or "the stored run failed here"
            self._bad.add(node_id)
        else:
            self.results[node_id] = restored.output
            if restored.status == "recovered":
                self.recovered[node_id] = restored.error or ""
        if retried:
            self.attempts[node_id] = restored.attempts
        self.times[node_id] = restored.duration
        self._finish(node_id)
        if self.observer is not None:
            now = time.perf_counter()
            self.observer.node_started(node_id, now)
            self._observe_end(node_id, now)
        return True

    async def _commit(self, node_id: str) -> None:
        from kflow_runtime import durable

        self._committing.add(node_id)
        try:
            await durable.commit(self, node_id)
        finally:
            self._committing.discard(node_id)

    async def _open(
        self, names: tuple[str | tuple[str, str], ...], kwargs: dict[str, Any],
        timeout: float | None, deadline: _Watch | None,
    ) -> None:
        """Open (or find open) the node's resources into `kwargs`, bounded by `timeout`."""
        get = self.resources.get
        for name in names:
            # (parameter, resource): the code says `db` for "main_db"
            param, resource = name if isinstance(name, tuple) else (name, name)
            if deadline is not None:
                deadline.opening = resource
            kwargs[param] = await get(resource, timeout)
        if deadline is not None:
            deadline.opening = None

    def _cancelled(self, node_id: str, started: float, observer: Observer | None) -> None:
        """The run is being cancelled while this node runs: record it, then let it go."""
        at = time.perf_counter()
        self.times[node_id] = at - started
        self.errors[node_id] = "CancelledError: the run was cancelled while this node was running"
        self.cancelled.append(node_id)
        self._bad.add(node_id)
        self._finish(node_id)
        if observer is not None:
            observer.node_finished(node_id, "failed", at, self.errors[node_id])

    def _observe_end(self, node_id: str, at: float) -> None:
        assert self.observer is not None
        if node_id in self.errors:
            self.observer.node_finished(node_id, "failed", at, self.errors[node_id])
        elif node_id in self.recovered:
            self.observer.node_finished(node_id, "recovered", at, self.recovered[node_id])
        else:
            self.observer.node_finished(node_id, "done", at, None)

    def _gather_inputs(self, node_id: str, names: tuple[str, ...], kwargs: dict[str, Any]) -> None:
        self._read.update(names)
        own = self.inputs.get(node_id)
        if own is None:  # the usual case, without isinstance on an ABC per node
            given = self.inputs
            for name in names:
                if name in given:
                    kwargs[name] = given[name]
            return
        own = own if isinstance(own, Mapping) else {}
        for name in names:
            if name in own:
                kwargs[name] = own[name]
            elif name in self.inputs:
                kwargs[name] = self.inputs[name]

    async def _retrying(
        self, node_id: str, fn: Callable[..., Awaitable[Any]], kwargs: dict[str, Any],
        resources: tuple[str | tuple[str, str], ...], timeout: float | None, retry: Any,
    ) -> Any:
        from kflow_runtime.patterns.retry import retry_call

        async def attempt() -> Any:
            # Each attempt opens what the last one could not (a failed open is not kept).
            try:
                if timeout is None:
                    if resources:
                        await self._opening_for_retry(resources, kwargs, None, None, retry)
                    return await fn(**kwargs)
                async with _Deadline(self._watchdog, node_id, timeout) as deadline:
                    if resources:
                        await self._opening_for_retry(resources, kwargs, timeout, deadline,
                                                      retry)
                    return await fn(**kwargs)
            except BaseException as exc:
                if self.observer is not None and not is_cancellation(exc):
                    failed = exc.error if isinstance(exc, _RetryableOpen) else exc
                    self.observer.attempt_failed(node_id, failed, time.perf_counter())
                raise

        def count(n: int) -> None:
            self.attempts[node_id] = n
            if self.observer is not None:
                self.observer.attempt_started(node_id, n, time.perf_counter())

        if not resources:
            return await retry_call(attempt, retry, on_attempt=count)
        # A failed open is retried when the ResourceError or the driver's error under it
        # is one the policy retries (`retry_on=(ConnectionError,)` and a refused connection).
        policy = _AlsoRetrying(retry, _RetryableOpen)
        try:
            return await retry_call(attempt, policy, on_attempt=count)
        except _RetryableOpen as wrapped:
            raise wrapped.error from None

    async def _opening_for_retry(
        self, names: tuple[str | tuple[str, str], ...], kwargs: dict[str, Any],
        timeout: float | None, deadline: _Watch | None, retry: Any,
    ) -> None:
        from kflow_runtime.resources import ResourceError

        try:
            await self._open(names, kwargs, timeout, deadline)
        except ResourceError as exc:
            if not isinstance(exc, retry.retry_on) and isinstance(exc.__cause__, retry.retry_on):
                raise _RetryableOpen(exc) from exc
            raise

    async def _failed(
        self, node_id: str, fn: Callable[..., Any], exc: BaseException, kwargs: dict[str, Any],
        on_error: Any, timeout: float | None,
    ) -> None:
        message = self.describe(node_id, fn, exc, timeout)
        partial = getattr(exc, "partial", None)
        if isinstance(partial, dict):
            self.partial[node_id] = partial
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
        except BaseException as handler_exc:  # noqa: BLE001
            if is_cancellation(handler_exc):
                raise
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
        """`workflow.py:LINE: ErrorType: message`, credentials in URLs masked."""
        if isinstance(exc, NodeTimeout):
            text = f"TimeoutError: {exc}"
            if exc.resource is not None and self.resources is not None:
                where = self.resources.where(exc.resource)
                if where:
                    text += f" ({where}: no answer)"
        elif (unset := self._unset_result(node_id, fn, exc)) is not None:
            return mask(unset)
        elif isinstance(exc, TimeoutError) and not str(exc) and timeout is not None:
            text = f"TimeoutError: node {node_id!r} timed out after {timeout:g}s"
        else:
            text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if not isinstance(exc, Exception):
                text += _BASE_EXCEPTION_HINTS.get(type(exc), _BASE_EXCEPTION_HINT)
        if self.source_map is not None and self.module_file is not None:
            where = self.source_map.where(self.module_file, exc.__traceback__)
            if where is None and exc.__cause__ is not None:
                # A pattern's own error (BatchError) raised from the user's: point at theirs.
                where = self.source_map.where(self.module_file, exc.__cause__.__traceback__)
            if where:
                text = f"{where}: {text}"
        return mask(text)

    def _unset_result(self, node_id: str, fn: Callable[..., Any], exc: BaseException
                      ) -> str | None:
        """The node's code ended on a path that never set `result`: the appended
        `return result` of the node's own function found it unbound. Say so, at the line
        where that path ended (kflowc knew the possible ends), not as UnboundLocalError."""
        if not (isinstance(exc, UnboundLocalError) and "'result'" in str(exc)):
            return None
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        code = getattr(getattr(fn, "__wrapped__", fn), "__code__", None)
        if tb is None or tb.tb_frame.f_code is not code:
            return None
        if tb.tb_lineno != max(line for *_, line in code.co_lines() if line is not None):
            return None  # read before it was set, not at the appended `return result`
        ends = self.source_map.unset_ends(fn.__name__) if self.source_map else ()
        text = f"ResultNotSet: node {node_id!r} ended without setting `result`"
        if not ends:
            return text
        file = self.source_map.file if self.source_map else "workflow.py"
        if len(ends) > 1:
            lines = ", ".join(map(str, ends))
            return f"{file}:{ends[0]}: {text} (its code can end without it at lines {lines})"
        return f"{file}:{ends[0]}: {text} (its code ended here without assigning it)"

    # -- the result --------------------------------------------------------------

    def envelope(self) -> dict[str, Any]:
        if self._stored_envelope is not None:
            return self._stored_envelope
        if self._final is not None:
            return self._final
        if self._interrupted:
            status = "cancelled"
        else:
            status = "failed" if self.errors else "success"
        envelope = {
            "status": status,
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
        # Only when there is something to say, so an ordinary envelope keeps its shape.
        if self.cancelled or self._interrupted:
            envelope["cancelled"] = self.cancelled
        if self.partial:
            envelope["partial"] = self.partial
        if self.checkpoint is not None:
            envelope["resumed"] = list(self.checkpoint.resumed)
        return envelope


# (workflow, key) already warned about, so a process running many runs says it once.
_WARNED_INPUTS: set[tuple[str, str]] = set()


def _warn_misspelt(workflow: str, inputs: Mapping[str, Any], read: set[str],
                   nodes: tuple[str, ...]) -> None:
    """A given input no node read, close to one a node did read (an optional input with
    its default used instead): logged once, since the run itself succeeded."""
    import difflib

    for key in inputs:
        if key in read or key in nodes or not isinstance(key, str) or (workflow, key) in \
                _WARNED_INPUTS:
            continue
        close = difflib.get_close_matches(key, sorted(read), n=1, cutoff=0.75)
        if close:
            _WARNED_INPUTS.add((workflow, key))
            logger.warning("workflow %r: input %r was given but no node reads it: did you "
                           "mean %r?", workflow, key, close[0])


def _misspelt(missing: list[str], inputs: Mapping[str, Any],
              needs: Mapping[str, tuple[str, ...]], nodes: tuple[str, ...]) -> str:
    """` (the inputs have 'page_nmu': did you mean 'page_num'?)` for a given key that is no
    required input and is close to the name of a missing one."""
    import difflib

    unknown = [k for k in inputs if isinstance(k, str) and k not in needs and k not in nodes]
    if not unknown:
        return ""
    found = []
    for name in missing:
        close = difflib.get_close_matches(name, unknown, n=1, cutoff=0.6)
        if close:
            found.append(f"the inputs have {close[0]!r}: did you mean {name!r}?")
    return f" ({'; '.join(found)})" if found else ""


def off_loop(fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """A sync node function (Kailash's PythonCodeNode) as the async function `Run.call`
    awaits: it runs in a worker thread, so its blocking calls do not stall other nodes.
    A timeout fails the node but cannot stop the thread, which runs to its end."""

    @functools.wraps(fn)
    async def node(**kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, **kwargs)

    return node


class _AlsoRetrying:
    """`policy`, also retrying `extra`: a view, so the policy's own type stays retry.py's."""

    def __init__(self, policy: Any, extra: type[BaseException]) -> None:
        self._policy = policy
        self.retry_on = (*policy.retry_on, extra)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._policy, name)


class _RetryableOpen(Exception):
    """Carries a ResourceError through retry_call when the error under it is retryable."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


_BASE_EXCEPTION_HINT = " (a BaseException raised by the node's code: it fails this node only)"
_BASE_EXCEPTION_HINTS = {
    SystemExit: " (raised by the node's code: a node cannot end the process; it fails instead)",
    asyncio.CancelledError: " (raised by the node's own code; the run itself was not cancelled)",
}
