"""Where parallel_map's items run: the executor seam.

An executor runs *chunks* of `(index, item)` pairs and answers one *outcome* per item:

    (index, True, value)                     the item succeeded
    (index, False, (message, error_type))    the item failed (see `_errors.describe`; a
                                             third, `workflow.py:LINE`, when known)

Outcomes are plain data, so they cross process and network boundaries (a Dask worker) without
pickling exceptions. For each parallel_map call an executor opens a *session* (a pool, a cluster
client) sized for `max_workers` and yields its `run_chunk` coroutine function; parallel_map's
`max_workers` worker tasks each await one chunk at a time, so at most `max_workers` chunks, and as
a chunk runs its items one by one, at most `max_workers` items, are in flight.

A new engine is one class with `chunk_size` and `session`, registered by name:

    register_executor("dask", lambda: DaskExecutor(client))

and its workers run `run_chunk_sync(process_item, chunk, timeout_per_item)`.

"dask" is registered here but loaded only when asked for (`dask_executor.py`); with
`$KFLOW_DASK_SCHEDULER` set, `resolve_executor` sends every map to that cluster.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

from ..redact import mask
from ..sourcemap import where_raised
from ._errors import describe, item_timed_out

Chunk = list[tuple[int, Any]]
Outcome = tuple[int, bool, Any]
RunChunk = Callable[[Chunk], Awaitable[list[Outcome]]]

# Set to a scheduler address (tcp://host:8786): every parallel_map of the process runs there.
DASK_SCHEDULER_ENV = "KFLOW_DASK_SCHEDULER"


class Executor(Protocol):
    """What parallel_map needs from an engine that runs items."""

    def chunk_size(self, total: int | None, max_workers: int) -> int:
        """Items per chunk when parallel_map is given no `batch_size` (`total` None: unknown)."""
        ...

    def session(
        self,
        process_item: Callable[[Any], Any],
        *,
        max_workers: int,
        timeout_per_item: float | None,
    ) -> AbstractAsyncContextManager[RunChunk]:
        """Open what one parallel_map call needs and yield `run_chunk(chunk) -> outcomes`.

        `run_chunk` answers one outcome per item of its chunk, in any order. It applies
        `timeout_per_item` to each item on its own and never raises for an item's failure; if it
        raises anyway, parallel_map records every item of that chunk as failed with that error.
        """
        ...


def is_async_callable(fn: object) -> bool:
    """True for a coroutine function, a partial of one, or an object with `async def __call__`."""
    if inspect.iscoroutinefunction(fn):
        return True
    return callable(fn) and inspect.iscoroutinefunction(fn.__call__)


def fails_the_item(exc: BaseException) -> bool:
    """True if `exc`, raised out of an item's code, fails that item; False if it stops the map.

    Only a cancellation of the map's task from outside, Ctrl-C's KeyboardInterrupt and
    GeneratorExit (a coroutine being closed) stop the map. A CancelledError the item's code
    raised itself (nothing cancelled the task), SystemExit (`sys.exit()` in an item) and any
    other BaseException fail the item like an Exception would.
    """
    if isinstance(exc, Exception):
        return True
    if isinstance(exc, asyncio.CancelledError):
        task = _current_task()
        return task is None or task.cancelling() == 0
    return not isinstance(exc, (KeyboardInterrupt, GeneratorExit))


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop: a sync item in a process worker
        return None


def describe_item_error(exc: BaseException) -> tuple[str, ...]:
    """`describe(exc)`, said plainly for the BaseExceptions an item can fail with; with
    `workflow.py:LINE` third when the item's code raised it in this process."""
    where = where_raised(exc.__traceback__)
    if where is not None:
        return (*_plainly(exc), where)
    return _plainly(exc)


def _plainly(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, SystemExit):
        code = "" if exc.code is None else mask(repr(exc.code))
        return f"sys.exit({code}) inside the item", "SystemExit"
    if isinstance(exc, asyncio.CancelledError):
        return "CancelledError raised inside the item (nothing cancelled the map)", type(
            exc
        ).__name__
    return describe(exc)


async def _settle(index: int, pending: Awaitable[Any], timeout: float | None) -> Outcome:
    """Await one item under its own timeout and answer its outcome.

    Raises only what stops the map (see `fails_the_item`).
    """
    scope = asyncio.timeout(timeout)  # None: no deadline
    try:
        async with scope:
            value = await pending
    except BaseException as exc:
        if isinstance(exc, TimeoutError) and scope.expired():
            exc = item_timed_out(timeout)
        elif not fails_the_item(exc):
            raise
        return index, False, describe_item_error(exc)
    return index, True, value


async def _run_items(
    call: Callable[[Any], Awaitable[Any]], chunk: Chunk, timeout: float | None
) -> list[Outcome]:
    """Await `call(item)` for each item in turn, each under its own timeout."""
    return [await _settle(index, call(item), timeout) for index, item in chunk]


class AsyncExecutor:
    """Coroutine functions on the running loop.

    parallel_map does not go through `session` for this executor: it runs its own per-item loop,
    which is the fast path. The session exists so the executor also works where only the
    protocol is known.
    """

    def chunk_size(self, total: int | None, max_workers: int) -> int:
        return 1

    @asynccontextmanager
    async def session(
        self,
        process_item: Callable[[Any], Awaitable[Any]],
        *,
        max_workers: int,
        timeout_per_item: float | None,
    ) -> AsyncIterator[RunChunk]:
        async def run_chunk(chunk: Chunk) -> list[Outcome]:
            return await _run_items(process_item, chunk, timeout_per_item)

        yield run_chunk


class ThreadExecutor:
    """Sync functions in a thread pool of `max_workers` threads, so the loop never blocks.

    A timed-out item is recorded as failed at once, but its thread runs until the function
    returns (threads cannot be interrupted), and stays busy: the next item waits for a free
    thread, and its timeout starts when it does. Cancelling the map waits for the items still
    running in threads, each up to its own timeout.
    """

    def chunk_size(self, total: int | None, max_workers: int) -> int:
        return 1

    @asynccontextmanager
    async def session(
        self,
        process_item: Callable[[Any], Any],
        *,
        max_workers: int,
        timeout_per_item: float | None,
    ) -> AsyncIterator[RunChunk]:
        if is_async_callable(process_item):
            raise TypeError(
                "executor 'thread' runs a sync process_item; this one is a coroutine function "
                "(use executor='async')"
            )
        threads = _Threads(process_item, max_workers, timeout_per_item)
        try:
            yield threads.run_chunk
        finally:
            # wait=False: a thread still running a timed-out item must not block the loop.
            threads.pool.shutdown(wait=False, cancel_futures=True)


class _Threads:
    """One map's threads. An item goes to a thread only when one is free, never to the pool's
    queue, where its timeout would run out while it waits behind timed-out items."""

    def __init__(self, fn: Callable[[Any], Any], max_workers: int, timeout: float | None):
        from concurrent.futures import ThreadPoolExecutor

        self.fn = fn
        self.timeout = timeout
        self.loop = asyncio.get_running_loop()
        self.pool = ThreadPoolExecutor(max_workers, thread_name_prefix="kflow-parallel-map")
        self.free = asyncio.Semaphore(max_workers)  # threads not running an item

    async def run_chunk(self, chunk: Chunk) -> list[Outcome]:
        return [await self.run(index, item) for index, item in chunk]

    async def run(self, index: int, item: Any) -> Outcome:
        await self.free.acquire()
        started = time.monotonic()
        future = self.pool.submit(self.fn, item)
        try:
            return await _settle(index, asyncio.wrap_future(future), self.timeout)
        except BaseException:  # the map is stopping: let the item in the thread end first
            await self._wait_for(future, started)
            raise
        finally:
            if future.done():
                self.free.release()
            else:  # timed out: the thread is free once the function returns
                future.add_done_callback(self._release_from_thread)

    async def _wait_for(self, future: Any, started: float) -> None:
        """Wait until the item `future` runs has ended, or its timeout has passed."""
        if future.done():
            return
        remaining = None if self.timeout is None else started + self.timeout - time.monotonic()
        if remaining is not None and remaining <= 0:
            return
        waiter = asyncio.wrap_future(future)
        try:
            await asyncio.wait([waiter], timeout=remaining)
        finally:
            waiter.cancel()  # never answers into a loop that may be closed by then

    def _release_from_thread(self, _future: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self.free.release)
        except RuntimeError:  # the loop has closed: nobody waits for this thread any more
            pass


class ProcessExecutor:
    """A `ProcessPoolExecutor` of `max_workers` forked processes; items travel in chunks.

    `process_item` must be picklable (a module-level function); a sync one runs directly, a
    coroutine function on an event loop per chunk. Values must be picklable too: a chunk whose
    result cannot be sent back fails as a whole.
    """

    def chunk_size(self, total: int | None, max_workers: int) -> int:
        # About four chunks per worker: few round trips, yet a slow chunk cannot idle the rest.
        if total is None:
            return 64
        return max(1, min(256, -(-total // (max_workers * 4))))

    @asynccontextmanager
    async def session(
        self,
        process_item: Callable[[Any], Any],
        *,
        max_workers: int,
        timeout_per_item: float | None,
    ) -> AsyncIterator[RunChunk]:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        loop = asyncio.get_running_loop()
        pool = ProcessPoolExecutor(
            max_workers,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_reset_sigint,
        )

        async def run_chunk(chunk: Chunk) -> list[Outcome]:
            return await loop.run_in_executor(
                pool, run_chunk_sync, process_item, chunk, timeout_per_item
            )

        try:
            yield run_chunk
        finally:
            # Off the loop's thread: reap the workers. After a failure or a cancellation the
            # chunks not started are dropped, and the ones running end (each sync item within
            # its timeout) before the map raises.
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)


def _reset_sigint() -> None:
    # A forked worker inherits asyncio.run's SIGINT handler, which points at the parent's loop.
    import signal

    signal.signal(signal.SIGINT, signal.default_int_handler)


def run_chunk_sync(
    process_item: Callable[[Any], Any], chunk: Chunk, timeout_per_item: float | None
) -> list[Outcome]:
    """Run one chunk item by item in this process; what a process or cluster worker executes.

    A sync item's timeout is enforced with SIGALRM, which only exists in a process's main
    thread; elsewhere (a Dask worker thread) the engine must bound the time itself.
    """
    if is_async_callable(process_item):
        # A loop per chunk: simple, and cheap next to shipping the chunk to another process.
        return asyncio.run(_run_items(process_item, chunk, timeout_per_item))
    outcomes: list[Outcome] = []
    for index, item in chunk:
        try:
            value = _call_with_alarm(process_item, item, timeout_per_item)
        except BaseException as exc:
            if not fails_the_item(exc):
                raise
            outcomes.append((index, False, describe_item_error(exc)))
        else:
            outcomes.append((index, True, value))
    return outcomes


def _call_with_alarm(fn: Callable[[Any], Any], item: Any, timeout: float | None) -> Any:
    import signal

    if (
        timeout is None
        or not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        return fn(item)

    def expire(signum: int, frame: object) -> None:
        raise item_timed_out(timeout)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return fn(item)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _dask_executor(address: str | None = None) -> Executor:
    from .dask_executor import DaskExecutor  # distributed loads only when a map asks for it

    return DaskExecutor(address)


_FACTORIES: dict[str, Callable[[], Executor]] = {
    "async": AsyncExecutor,
    "thread": ThreadExecutor,
    "process": ProcessExecutor,
    "dask": _dask_executor,
}


def register_executor(name: str, factory: Callable[[], Executor]) -> None:
    """Make `parallel_map(..., executor=name)` use `factory()`; replaces an earlier one."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"executor name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise TypeError(f"executor factory for {name!r} must be callable, got {factory!r}")
    _FACTORIES[name] = factory


def get_executor(name: str) -> Executor:
    """A new executor of the registered kind `name`."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        known = ", ".join(sorted(_FACTORIES))
        raise ValueError(f"unknown executor {name!r}; registered: {known}") from None
    return factory()


def resolve_executor(executor: str | Executor) -> Executor:
    """What runs a map given `executor=`: with `$KFLOW_DASK_SCHEDULER` set, always that cluster.

    The name is checked either way, so a typo fails with or without the variable.
    """
    runner = get_executor(executor) if isinstance(executor, str) else executor
    address = os.environ.get(DASK_SCHEDULER_ENV)
    if address:
        return _dask_executor(address)
    return runner
