"""parallel_map: apply `process_item` to every item with at most `max_workers` in flight.

A fixed pool of worker tasks takes items from one shared feed, so tasks and memory stay
O(max_workers) whatever the number of items, and `items` is read lazily. How the workers on the
event loop keep per-item cost at a hand-written pool's is told in docs/patterns-runtime.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from itertools import islice
from typing import Any

from ..observe import CURRENT, map_hooks
from ..run import CHECKPOINTING
from ._errors import PatternError, describe, format_error, item_timed_out
from .executors import (
    AsyncExecutor,
    Executor,
    ThreadExecutor,
    describe_item_error,
    fails_the_item,
    is_async_callable,
    resolve_executor,
)

Progress = Callable[[int, "int | None"], object]
OnBatch = Callable[[float, float, int, int], object]

# Marks a result slot whose item failed or never ran; private, so no user value is it.
_PENDING: Any = object()

# Items a worker takes at a time (see _Run): contiguous blocks grow up to _MAX_BLOCK. Lanes
# are dealt from spans of _SPAN items (at least _MIN_LANE per lane): small enough that a span
# stays in the CPU's L2 cache between its copy and its use, large enough to pay a lane's
# bookkeeping once per many items (docs/patterns-runtime.md).
_MAX_BLOCK = 4096
_MIN_DURABLE_LANE = 4  # a durable run's lanes: small, so a kill loses little (durable.py)
_SPAN = 4096
_MIN_LANE = 16
# Input that is not a list, given without batch_size, is read this many items per worker at a
# time (at least 256, at most 8192), so read-ahead stays O(max_workers).
_READ_AHEAD_PER_WORKER = 32


class ParallelMapError(PatternError):
    """Items failed and `continue_on_error` was False.

    `errors` holds the error records (index order); `statistics` the run's statistics.
    """

    def __init__(self, message: str, errors: list[dict[str, Any]], statistics: dict[str, Any]):
        super().__init__(message)
        self.errors = errors
        self.statistics = statistics


async def parallel_map(
    process_item: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    max_workers: int = 10,
    batch_size: int | None = None,
    timeout_per_item: float | None = 5.0,
    continue_on_error: bool = False,
    executor: str | Executor = "async",
    progress: Progress | None = None,
    on_batch: OnBatch | None = None,
) -> dict[str, Any]:
    """Run `process_item` over `items`; return `{"results", "errors", "statistics"}`.

    `results` are the successful outputs in input order; `errors` one record
    `{"index", "item", "error", "error_type"}` per failed item, in index order. Up to
    `max_workers` items run at once; `batch_size` only sets how many items are read from
    `items` at a time, never how many run. Without `continue_on_error`, the first failure stops
    new items from starting, the ones in flight finish, and ParallelMapError is raised.
    `progress(done, total)` is called as items finish (`total` None for an iterable without a
    length); `on_batch(started, ended, first_index, size)` as each contiguous stretch of items
    is done (perf_counter times). Left out, both come from the observer of the run this map is part
    of, if it has one (kflow_runtime.observe).
    """
    _check_options(max_workers, batch_size, timeout_per_item)
    watch = CURRENT.get()
    if watch is None:
        return await _parallel_map(process_item, items, max_workers, batch_size,
                                   timeout_per_item, continue_on_error, executor, progress,
                                   on_batch)
    # Watched (a run's observer): the map is a span of its own, with its counts, also when
    # the caller brings its own callbacks.
    observer, node_id = watch
    if progress is None and on_batch is None:
        progress, on_batch = map_hooks()
    observer.map_started(node_id, len(items) if isinstance(items, Sized) else None,
                         time.perf_counter())
    try:
        outcome = await _parallel_map(process_item, items, max_workers, batch_size,
                                      timeout_per_item, continue_on_error, executor, progress,
                                      on_batch)
    except ParallelMapError as exc:
        observer.map_finished(node_id, exc.statistics, exc.errors, time.perf_counter())
        raise
    except BaseException:
        observer.map_finished(node_id, None, [], time.perf_counter())
        raise
    observer.map_finished(node_id, outcome["statistics"], outcome["errors"], time.perf_counter())
    return outcome


async def _parallel_map(
    process_item: Callable[[Any], Any], items: Iterable[Any], max_workers: int,
    batch_size: int | None, timeout_per_item: float | None, continue_on_error: bool,
    executor: str | Executor, progress: Progress | None, on_batch: OnBatch | None,
) -> dict[str, Any]:
    options = dict(max_workers=max_workers, batch_size=batch_size,
                   timeout_per_item=timeout_per_item, continue_on_error=continue_on_error,
                   executor=executor, progress=progress, on_batch=on_batch)
    checkpointing = CHECKPOINTING.get()
    if checkpointing is not None:  # a durable run: item outcomes are stored as they end
        from kflow_runtime.durable import checkpointed_map

        return await checkpointed_map(checkpointing, process_item, items, **options)
    run, chunks, duration = await execute(process_item, items, **options)
    results, errors = run.outcome()
    return answer(results, errors, run.total, duration, chunks, max_workers, continue_on_error)


async def execute(
    process_item: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    max_workers: int,
    batch_size: int | None,
    timeout_per_item: float | None,
    continue_on_error: bool,
    executor: str | Executor,
    progress: Progress | None,
    on_batch: OnBatch | None,
    recorder: Any = None,
    max_block: int = _MAX_BLOCK,
) -> tuple[_Run, int, float]:
    """Run the items: (the map's shared state, batches or chunks taken, seconds).

    `recorder` (kflow_runtime.durable) is told each run of items a worker finishes (a block,
    at most `max_block` items, or a lane) and may ask the workers to wait."""
    runner = resolve_executor(executor)  # $KFLOW_DASK_SCHEDULER overrides `executor`
    total = len(items) if isinstance(items, Sized) else None
    started = time.perf_counter()

    if isinstance(runner, AsyncExecutor) and is_async_callable(process_item):
        workers = _worker_count(max_workers, total, 1)
        read_ahead = min(max(_READ_AHEAD_PER_WORKER * workers, 256), 8192)
        # A durable run's workers report runs of at most max_block items, and lanes of a few
        # items: a lane reports only when all of it is done, and what a kill loses is about
        # one run per worker (docs/durable.md).
        if recorder is None:
            span = max(_SPAN, workers * _MIN_LANE)
        else:
            span = max(min(_SPAN, max_block), workers * _MIN_DURABLE_LANE)
        feed = _Feed(items, batch_size, read_ahead, lanes=workers, span=span)
        run = _Run(feed, total, stop_on_error=not continue_on_error, progress=progress,
                   on_batch=on_batch, recorder=recorder, max_block=max_block)
        if timeout_per_item is None:
            worker = lambda: run.work(process_item)  # noqa: E731
        else:
            worker = lambda: run.work_with_deadline(process_item, timeout_per_item)  # noqa: E731
        await _run_workers(worker, workers)
        chunks = feed.batches if batch_size else run.done
    else:
        if isinstance(runner, AsyncExecutor):
            runner = ThreadExecutor()  # a sync process_item must never block the loop
        # batch_size may make chunks smaller, never larger: a chunk runs its items one after
        # another, so larger chunks would mean fewer items in flight.
        chunk_size = runner.chunk_size(total, max_workers)
        if batch_size:
            chunk_size = min(chunk_size, batch_size)
        feed = _Feed(items, batch_size, chunk_size)
        run = _Run(feed, total, stop_on_error=not continue_on_error, progress=progress,
                   on_batch=on_batch, recorder=recorder, max_block=max_block)
        session = runner.session(
            process_item, max_workers=max_workers, timeout_per_item=timeout_per_item
        )
        async with session as run_chunk:
            # A cluster engine may keep more chunks in flight (Dask: two per worker thread);
            # it then bounds the items in flight on each of its workers itself.
            slots = getattr(run_chunk, "chunks_in_flight", max_workers)
            await _run_workers(
                lambda: run.work_in_chunks(run_chunk, chunk_size),
                _worker_count(slots, total, chunk_size),
            )
        chunks = feed.batches if batch_size else run.chunks
    return run, chunks, time.perf_counter() - started


def answer(
    results: list[Any], errors: list[dict[str, Any]], total: int | None, duration: float,
    chunks: int, max_workers: int, continue_on_error: bool,
) -> dict[str, Any]:
    """parallel_map's answer (or its ParallelMapError) from the outcomes."""
    done = len(results) + len(errors)
    statistics = {
        "total": total if total is not None else done,
        "successful": len(results),
        "failed": len(errors),
        "duration": duration,
        "total_duration": duration,  # Kailash's name for it, for code moving from there
        "items_per_second": done / duration if duration > 0 else 0.0,
        "max_workers": max_workers,
        "batches": chunks,
    }
    if errors and not continue_on_error:
        raise ParallelMapError(_summary(errors, statistics["total"], done), errors, statistics)
    return {"results": results, "errors": errors, "statistics": statistics}


class _Feed:
    """Hands out the input in input order, reading it a batch at a time.

    A list given without batch_size is read in place. Anything else is read `batch` items at
    a time (`batch_size`, else `read_ahead`); the next batch is read once every item of the
    current one has been handed out. Executors take contiguous chunks (`take`); the workers
    on the loop take *lanes* (`lane`).
    """

    def __init__(
        self, items: Iterable[Any], batch_size: int | None, read_ahead: int, *, lanes: int = 1,
        span: int = _SPAN,
    ) -> None:
        self.lanes = max(1, lanes)
        self.span = span  # items dealt into lanes at a time
        self.base = 0  # input index of buffer[0]
        self.pos = 0  # next item of the buffer to hand out
        self.batches = 0  # batches read from the input
        self.source: Iterator[Any] | None
        if type(items) is list and batch_size is None:
            self.buffer: list[Any] = items
            self.source = None
        else:
            self.buffer = []
            self.source = iter(items)
            self.batch = batch_size or read_ahead
        # The span of the buffer being cut into lanes: [lo, hi), `count` lanes, `next` of them
        # handed out.
        self.lo = self.hi = self.count = self.next = 0

    def take(self, size: int) -> tuple[int, list[Any]] | None:
        """Up to `size` next items as (index of the first, items); None once the input is dry."""
        if not self._reserve(size):
            return None
        return self.base + self.lo, self.buffer[self.lo : self.hi]

    def lane(self) -> tuple[int, int, list[Any]] | None:
        """The next lane as (index of its first item, stride, items); None once dry.

        The next span of items is dealt round-robin into `lanes` lanes: lane k holds items
        k, k + lanes, k + 2 * lanes ... of the span. Workers that
        each take a lane and await its items one by one thus start items in input order,
        while everything done per lane is paid once per lane, not once per item.
        """
        if self.next == self.count:
            if not self._reserve(self.span):
                return None
            self.count = min(self.lanes, self.hi - self.lo)
            self.next = 0
        k = self.next
        self.next = k + 1
        return self.base + self.lo + k, self.count, self.buffer[self.lo + k : self.hi : self.count]

    def _reserve(self, size: int) -> bool:
        """Mark the next up to `size` items of the buffer as [lo, hi); False once dry."""
        if self.pos >= len(self.buffer) and not self._refill():
            return False
        self.lo = self.pos
        self.hi = self.pos = min(len(self.buffer), self.pos + size)
        return True

    def _refill(self) -> bool:
        if self.source is None:
            return False
        self.base += len(self.buffer)
        self.buffer = list(islice(self.source, self.batch))
        self.pos = 0
        if not self.buffer:
            self.source = None
            return False
        self.batches += 1
        return True


class _Run:
    """What the workers of one parallel_map call share: the feed, result slots, errors."""

    def __init__(
        self,
        feed: _Feed,
        total: int | None,
        *,
        stop_on_error: bool,
        progress: Progress | None,
        on_batch: OnBatch | None = None,
        recorder: Any = None,
        max_block: int = _MAX_BLOCK,
    ) -> None:
        self.feed = feed
        self.recorder = recorder  # durable runs: told each finished stretch (see execute)
        self.max_block = max_block
        self.total = total
        # One slot per item, filled by index: input order without sorting. Sized input gets
        # all its slots at once; other input grows them as items are read.
        self.results: list[Any] = [_PENDING] * total if total is not None else []
        self.errors: list[dict[str, Any]] = []
        self.stop_on_error = stop_on_error
        self.progress = progress
        self.on_batch = on_batch
        self.stopped = False
        self.done = 0  # items finished
        self.chunks = 0  # chunks handed to an executor
        # Runs of items being worked on, by worker: (index of the first item, stride, items,
        # outputs so far). The item in flight is items[len(outputs)].
        self.active: dict[int, tuple[int, int, list[Any], list[Any]]] = {}
        # Until workers compete for items, they take contiguous blocks of `block` items, which
        # doubles with every block no other worker took items during (`after` is where the
        # feed stood after a worker's take); then lanes, unless on_batch wants each finished
        # stretch as it ends (then blocks of one item). One size for all: a worker that gets
        # its turn only now (a durable run's workers yield to its store) starts where the
        # others are, not at one item.
        self.dealing = False
        self.block = 1
        self.after: dict[int, int] = {}
        self.block_started: dict[int, float] = {}  # by worker, only when on_batch is set

    # --- the workers on the event loop -------------------------------------------------------
    #
    # A worker takes a *run* of items (take), awaits them one by one and stores the outputs
    # with one slice assignment; every per-run decision lives in take/finish, so the per-item
    # loop is a hand-written pool's loop (the two loops below differ only in the deadline,
    # kept out of the other's way for the same reason). Runs are contiguous blocks that double
    # in size while one worker meets the items alone (they never suspend), and lanes of the
    # feed once workers compete (they suspend); with on_batch, blocks of one item then, so
    # that each finished item is reported as it ends (checkpoints store them). Once the input
    # is dry, idle workers steal the unstarted second half of the longest run.

    async def work(self, fn: Callable[[Any], Any]) -> None:
        me = id(asyncio.current_task())
        while (taken := self.take(me)) is not None:
            first, stride, run, out = taken
            for item in run:
                try:
                    out.append(await fn(item))
                except BaseException as exc:
                    self.item_raised(first + len(out) * stride, out, item, exc)
            self.finish(me)
            if self.recorder is not None and self.recorder.wants_turn:
                await self.wait_for_store(None, 0.0)

    async def work_with_deadline(self, fn: Callable[[Any], Any], timeout: float) -> None:
        me = id(asyncio.current_task())
        deadline = _Deadline(timeout)
        clock = time.monotonic
        try:
            while (taken := self.take(me)) is not None:
                first, stride, run, out = taken
                for item in run:
                    deadline.when = clock() + timeout
                    try:
                        out.append(await fn(item))
                    except asyncio.CancelledError as exc:
                        index = first + len(out) * stride
                        if deadline.expired_here():
                            self.fail(index, out, item, item_timed_out(timeout))
                        else:
                            self.item_raised(index, out, item, exc)
                    except BaseException as exc:
                        self.item_raised(first + len(out) * stride, out, item, exc)
                self.finish(me)
                if self.recorder is not None and self.recorder.wants_turn:
                    await self.wait_for_store(deadline, timeout)
        finally:
            deadline.close()

    async def wait_for_store(self, deadline: _Deadline | None, timeout: float) -> None:
        """A durable run's store is behind: wait before taking more items. The worker's
        deadline timer stays armed (it cannot be paused), so each of its expiries is let
        through and the wait goes on."""
        while True:
            if deadline is not None:
                deadline.when = time.monotonic() + timeout
            try:
                await self.recorder.drain()
                return
            except asyncio.CancelledError:
                if deadline is None or not deadline.expired_here():
                    raise

    def take(self, me: int) -> tuple[int, int, list[Any], list[Any]] | None:
        """The next run for worker `me`: (first index, stride, items, empty output list)."""
        if self.stopped:
            return None
        feed = self.feed
        if self.dealing:
            taken = feed.lane()
        else:
            block = feed.take(self.block)
            taken = None if block is None else (block[0], 1, block[1])
            self.after[me] = feed.base + feed.pos
        if taken is None:
            taken = self._steal()
            if taken is None:
                return None
        elif self.total is None and len(self.results) < (end := feed.base + feed.hi):
            self.results.extend([_PENDING] * (end - len(self.results)))
        first, stride, run = taken
        out: list[Any] = []
        self.active[me] = (first, stride, run, out)
        if self.on_batch is not None:
            self.block_started[me] = time.perf_counter()
        return first, stride, run, out

    def _steal(self) -> tuple[int, int, list[Any]] | None:
        """The unstarted second half of the longest run (its owner awaits an earlier item)."""
        best = None
        most = 0
        for first, stride, run, out in self.active.values():
            spare = len(run) - len(out) - 1  # items after the owner's in-flight one
            if spare > most:
                best, most = (first, stride, run), spare
        if best is None:
            return None
        first, stride, run = best
        cut = len(run) - (most + 1) // 2
        stolen = run[cut:]
        del run[cut:]  # the owner's loop over `run` simply ends sooner
        return first + cut * stride, stride, stolen

    def finish(self, me: int) -> None:
        """Store worker `me`'s run outputs into their slots."""
        first, stride, _, out = self.active.pop(me)
        self.results[first : first + len(out) * stride : stride] = out
        self.done += len(out)
        if not self.dealing:
            feed = self.feed
            if self.after.pop(me) == feed.base + feed.pos:  # nobody else took items meanwhile
                self.block = min(2 * self.block, self.max_block)
            elif self.on_batch is None:
                self.dealing = True
            else:
                self.block = 1
        if self.on_batch is not None:  # never set while dealing: runs are contiguous
            self.on_batch(self.block_started.pop(me), time.perf_counter(), first, len(out))
        if self.recorder is not None:
            self.recorder.block_done(self, first, len(out), stride)
        if self.progress is not None:
            self.progress(self.done, self.total)

    def item_raised(self, index: int, out: list[Any], item: Any, exc: BaseException) -> None:
        """`exc` came out of the item at `index`: fail it, or let the map stop."""
        if fails_the_item(exc):
            self.fail(index, out, item, exc)
        elif isinstance(exc, asyncio.CancelledError):
            raise exc
        else:  # Ctrl-C: the map stops its other workers before it raises this
            raise _Interrupted(exc) from exc

    def fail(self, index: int, out: list[Any], item: Any, exc: BaseException) -> None:
        """Record the failure of the item at `index` and leave its slot empty."""
        self.errors.append(_record(index, item, *describe_item_error(exc)))
        if self.stop_on_error and not self.stopped:
            self.stopped = True
            # No new item starts: cut every run after its in-flight item (this one's too).
            for _, _, run, done in self.active.values():
                del run[len(done) + 1 :]
        out.append(_PENDING)

    # --- workers handing chunks to an executor ----------------------------------------------

    async def work_in_chunks(self, run_chunk: Callable[[Any], Any], chunk_size: int) -> None:
        while not self.stopped and (taken := self.feed.take(chunk_size)) is not None:
            start, items = taken
            if self.total is None:
                self.results.extend([_PENDING] * len(items))
            chunk = list(enumerate(items, start))
            self.chunks += 1
            chunk_started = time.perf_counter()
            try:
                outcomes = await run_chunk(chunk)
            except BaseException as exc:
                if not fails_the_item(exc):
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    raise _Interrupted(exc) from exc
                # The engine failed (a broken pool, an unpicklable value): every item of the
                # chunk is accounted for as failed with that error.
                outcomes = [(index, False, describe(exc)) for index, _ in chunk]
            if len(outcomes) != len(chunk):
                raise RuntimeError(
                    f"executor answered {len(outcomes)} outcomes for a chunk of {len(chunk)}"
                )
            for index, ok, value in outcomes:
                if ok:
                    self.results[index] = value
                else:
                    self.errors.append(_record(index, items[index - start], *value))
                    if self.stop_on_error:
                        self.stopped = True
            self.done += len(chunk)
            if self.on_batch is not None:
                self.on_batch(chunk_started, time.perf_counter(), start, len(chunk))
            if self.recorder is not None:
                self.recorder.block_done(self, start, len(chunk))
                if self.recorder.wants_turn:
                    await self.recorder.drain()
            if self.progress is not None:
                self.progress(self.done, self.total)

    # --- the answer -------------------------------------------------------------------------

    def outcome(self) -> tuple[list[Any], list[dict[str, Any]]]:
        """The successful outputs in input order, and the error records in index order."""
        self.errors.sort(key=_by_index)
        if not self.errors:
            # Nothing failed, so nothing stopped early: every slot is filled. No copy.
            return self.results, self.errors
        return [value for value in self.results if value is not _PENDING], self.errors


class _Interrupted(Exception):
    """Carries a KeyboardInterrupt out of a worker, so the map stops the others first."""


class _Deadline:
    """Times out the item a worker task awaits, with one timer per worker rather than per item.

    `asyncio.timeout()` arms and cancels a timer per item; items that finish without suspending
    leave those cancelled timers in the loop's heap until the loop next runs (O(items) memory).
    Here the worker writes the item's deadline into `when`, one clock read, and a single timer,
    re-armed whenever it fires, cancels the task once `when` has passed. Cancellation follows
    asyncio.timeout's protocol (`cancel`, then `uncancel` when the CancelledError arrives), so
    nested timeouts in user code and cancellation from outside behave as they do with it.
    """

    __slots__ = ("when", "_timeout", "_loop", "_task", "_base", "_expired", "_handle")

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._base = task.cancelling()
        self._expired = False
        self.when = time.monotonic() + timeout
        self._handle = self._loop.call_later(timeout, self._fire)

    def _fire(self) -> None:
        remaining = self.when - time.monotonic()
        if remaining > 0:  # the item it was armed for has finished; watch the current one
            self._handle = self._loop.call_later(remaining, self._fire)
            return
        if self._expired:
            self._task.uncancel()  # the item swallowed our last CancelledError
        self._expired = True
        self._task.cancel()
        self._handle = self._loop.call_later(self._timeout, self._fire)

    def expired_here(self) -> bool:
        """On CancelledError: True if it is our timeout and nobody else asked to cancel."""
        if not self._expired:
            return False
        self._expired = False
        return self._task.uncancel() <= self._base

    def close(self) -> None:
        self._handle.cancel()
        if self._expired:
            self._task.uncancel()
            self._expired = False


async def _run_workers(worker: Callable[[], Any], count: int) -> None:
    """Run `count` worker tasks; if one fails or we are cancelled, stop them all first."""
    tasks = [asyncio.create_task(worker()) for _ in range(count)]
    try:
        await asyncio.gather(*tasks)
    except BaseException as exc:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if isinstance(exc, _Interrupted):
            raise exc.__cause__ from None  # type: ignore[misc]
        raise


def _worker_count(max_workers: int, total: int | None, chunk_size: int) -> int:
    return max_workers if total is None else min(max_workers, -(-total // chunk_size))


def _record(index: int, item: Any, message: str, error_type: str, where: str | None = None
            ) -> dict[str, Any]:
    record = {"index": index, "item": item, "error": message, "error_type": error_type}
    if where is not None:  # the line of the user's code that raised it
        record["where"] = where
    return record


def _by_index(record: dict[str, Any]) -> int:
    return record["index"]


def _summary(errors: list[dict[str, Any]], total: int, done: int) -> str:
    first = errors[0]
    where = f"{first['where']}: " if "where" in first else ""
    text = (
        f"{len(errors)} of {total} items failed; first: item {first['index']}: "
        f"{where}{format_error(first['error'], first['error_type'])}"
    )
    if done < total:
        text += f"; stopped after the first failure, {total - done} items not started"
    return text


def _check_options(max_workers: int, batch_size: int | None, timeout: float | None) -> None:
    if not isinstance(max_workers, int) or max_workers < 1:
        raise ValueError(f"max_workers must be a positive int, got {max_workers!r}")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be None or a positive int, got {batch_size!r}")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout_per_item must be None or > 0 seconds, got {timeout!r}")
