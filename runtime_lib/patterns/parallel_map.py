"""parallel_map: apply `process_item` to every item with at most `max_workers` in flight.

A fixed pool of worker tasks pulls items from one shared iterator, so tasks and memory stay
O(max_workers) whatever the number of items, and `items` is read lazily. How the workers on the
event loop keep per-item cost near a hand-written pool is told in docs/patterns-runtime.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from itertools import islice
from typing import Any

from ..observe import map_hooks
from ._errors import PatternError, describe, format_error, item_timed_out
from .executors import (
    AsyncExecutor,
    Chunk,
    Executor,
    ThreadExecutor,
    is_async_callable,
    resolve_executor,
)

Progress = Callable[[int, "int | None"], object]
OnBatch = Callable[[float, float, int, int], object]

# Marks a result slot whose item failed or never ran; private, so no user value is it.
_PENDING: Any = object()

# Most items a worker reads ahead while nobody else is waiting for items (see _Run.take).
# A list's slice only copies pointers; 4096 measured fastest of 256 to 16384 (bench/). Other
# iterables are read item by item, so they get less.
_MAX_BLOCK_LIST = 4096
_MAX_BLOCK_OTHER = 256


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
    `{"index", "item", "error", "error_type"}` per failed item, in index order. Without
    `continue_on_error`, the first failure stops new items from starting, the ones in flight
    finish, and ParallelMapError is raised. `progress(done, total)` is called as items finish
    (`total` None for an iterable without a length); `on_batch(started, ended, first_index,
    size)` as each batch of items is done (perf_counter times). Left out, both come from
    the observer of the run this map is part of, if it has one (kflow_runtime.observe).
    """
    _check_options(max_workers, batch_size, timeout_per_item)
    if progress is None and on_batch is None:
        progress, on_batch = map_hooks()
    runner = resolve_executor(executor)  # $KFLOW_DASK_SCHEDULER overrides `executor`
    total = len(items) if isinstance(items, Sized) else None
    run = _Run(items, total, stop_on_error=not continue_on_error, progress=progress,
               on_batch=on_batch)
    started = time.perf_counter()

    if isinstance(runner, AsyncExecutor) and is_async_callable(process_item):
        if timeout_per_item is None:
            worker = lambda: run.work(process_item, batch_size)  # noqa: E731
        else:
            worker = lambda: run.work_with_deadline(process_item, batch_size, timeout_per_item)  # noqa: E731
        await _run_workers(worker, _worker_count(max_workers, total, batch_size or 1))
    else:
        if isinstance(runner, AsyncExecutor):
            runner = ThreadExecutor()  # a sync process_item must never block the loop
        chunk_size = batch_size or runner.chunk_size(total, max_workers)
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

    duration = time.perf_counter() - started
    results, errors = run.outcome()
    done = len(results) + len(errors)
    statistics = {
        "total": total if total is not None else done,
        "successful": len(results),
        "failed": len(errors),
        "duration": duration,
        "items_per_second": done / duration if duration > 0 else 0.0,
        "max_workers": max_workers,
        "batches": run.chunks,
    }
    if errors and not continue_on_error:
        raise ParallelMapError(_summary(errors, statistics["total"], done), errors, statistics)
    return {"results": results, "errors": errors, "statistics": statistics}


class _Run:
    """What the workers of one parallel_map call share: the source, result slots, errors."""

    def __init__(
        self,
        items: Iterable[Any],
        total: int | None,
        *,
        stop_on_error: bool,
        progress: Progress | None,
        on_batch: OnBatch | None = None,
    ) -> None:
        self.source: Iterator[Any] = iter(items)
        # A list is read by slicing; its slices are lists, which stealing and stopping cut.
        self.items_list = items if type(items) is list else None
        self.max_block = _MAX_BLOCK_LIST if self.items_list is not None else _MAX_BLOCK_OTHER
        self.total = total
        # One slot per item, filled by index: input order without sorting. Sized input gets
        # all its slots at once; other input grows them as items are read.
        self.results: list[Any] = [_PENDING] * total if total is not None else []
        self.errors: list[dict[str, Any]] = []
        self.stop_on_error = stop_on_error
        self.progress = progress
        self.on_batch = on_batch
        self.block_started: dict[int, float] = {}  # by worker, only when on_batch is set
        self.stopped = False
        self.taken = 0  # items read from the source so far
        self.done = 0  # items finished, for progress
        self.chunks = 0  # chunks handed to workers; an item fed on its own counts as one
        # Blocks being worked on, by worker: (start index, block, outputs so far).
        self.active: dict[int, tuple[int, list[Any], list[Any]]] = {}

    # --- the workers on the event loop -------------------------------------------------------
    #
    # A worker takes a *block* of items, awaits them one by one and stores the outputs as one
    # slice; every per-block decision lives in take/finish, so the per-item loop does no more
    # than a hand-written pool (the two loops below differ only in the deadline, kept out of
    # the other's way for the same reason). Without batch_size the block grows 1, 2, 4 ... only
    # while no other worker takes items meanwhile, that is while nobody waits for work; once
    # the source is dry, idle workers steal the unstarted tail of busy workers' blocks.

    async def work(self, fn: Callable[[Any], Any], batch_size: int | None) -> None:
        size = batch_size or 1
        me = id(asyncio.current_task())
        while (block_info := self.take(me, size, batch_size is None)) is not None:
            start, block, out = block_info
            for item in block:
                try:
                    out.append(await fn(item))
                except Exception as exc:
                    self.fail(start, out, item, exc)
            size = self.finish(me, size, batch_size is None)

    async def work_with_deadline(
        self, fn: Callable[[Any], Any], batch_size: int | None, timeout: float
    ) -> None:
        size = batch_size or 1
        me = id(asyncio.current_task())
        deadline = _Deadline(timeout)
        clock = time.monotonic
        try:
            while (block_info := self.take(me, size, batch_size is None)) is not None:
                start, block, out = block_info
                for item in block:
                    deadline.when = clock() + timeout
                    try:
                        out.append(await fn(item))
                    except asyncio.CancelledError:
                        if not deadline.expired_here():
                            raise
                        self.fail(start, out, item, item_timed_out(timeout))
                    except Exception as exc:
                        self.fail(start, out, item, exc)
                size = self.finish(me, size, batch_size is None)
        finally:
            deadline.close()

    def take(self, me: int, size: int, adaptive: bool) -> tuple[int, list[Any], list[Any]] | None:
        """The next block for worker `me`: (start index, items, empty output list)."""
        if self.stopped:
            return None
        if self.items_list is not None:
            block = self.items_list[self.taken : self.taken + size]  # cheaper than islice
        else:
            block = list(islice(self.source, size))
        if block:
            start = self.taken
            self.taken += len(block)
            if not adaptive:
                self.chunks += 1
            if self.total is None:
                self.results.extend([_PENDING] * len(block))
        elif adaptive and (stolen := self._steal()) is not None:
            start, block = stolen
        else:
            return None
        out: list[Any] = []
        self.active[me] = (start, block, out)
        if self.on_batch is not None:
            self.block_started[me] = time.perf_counter()
        return start, block, out

    def _steal(self) -> tuple[int, list[Any]] | None:
        """The last unstarted item of the busiest block (its owner awaits an earlier one)."""
        best = None
        most = 0
        for start, block, out in self.active.values():
            spare = len(block) - len(out) - 1  # items after the owner's in-flight one
            if spare > most:
                best, most = (start, block), spare
        if best is None:
            return None
        start, block = best
        item = block.pop()  # the owner's loop over `block` simply ends one item sooner
        return start + len(block), [item]

    def finish(self, me: int, size: int, adaptive: bool) -> int:
        """Store worker `me`'s block outputs; return its next block size."""
        start, block, out = self.active.pop(me)
        self.results[start : start + len(out)] = out
        if self.on_batch is not None:
            self.on_batch(self.block_started.pop(me), time.perf_counter(), start, len(out))
        if self.progress is not None:
            self.done += len(out)
            self.progress(self.done, self.total)
        if not adaptive:
            return size
        self.chunks += len(out)  # read-ahead is not batching: each item was fed on its own
        # Grow only if no other worker read from the source while this block ran.
        return min(size * 2, self.max_block) if self.taken == start + len(block) else 1

    def fail(self, start: int, out: list[Any], item: Any, exc: BaseException) -> None:
        """Record the failure of the item at `start + len(out)` and leave its slot empty."""
        self.errors.append(_record(start + len(out), item, *describe(exc)))
        if self.stop_on_error and not self.stopped:
            self.stopped = True
            # No new item starts: cut every block after its in-flight item (this one's too).
            for _, block, done in self.active.values():
                del block[len(done) + 1 :]
        out.append(_PENDING)

    # --- workers handing chunks to an executor ----------------------------------------------

    async def work_in_chunks(self, run_chunk: Callable[[Chunk], Any], chunk_size: int) -> None:
        numbered = self._numbered()
        while not self.stopped and (chunk := list(islice(numbered, chunk_size))):
            self.chunks += 1
            chunk_started = time.perf_counter()
            try:
                outcomes = await run_chunk(chunk)
            except Exception as exc:
                # The engine failed (a broken pool, an unpicklable value): every item of the
                # chunk is accounted for as failed with that error.
                outcomes = [(index, False, describe(exc)) for index, _ in chunk]
            if len(outcomes) != len(chunk):
                raise RuntimeError(
                    f"executor answered {len(outcomes)} outcomes for a chunk of {len(chunk)}"
                )
            items_by_index = dict(chunk)
            for index, ok, value in outcomes:
                if ok:
                    self.results[index] = value
                else:
                    self.errors.append(_record(index, items_by_index[index], *value))
                    if self.stop_on_error:
                        self.stopped = True
            if self.on_batch is not None:
                self.on_batch(chunk_started, time.perf_counter(), chunk[0][0], len(chunk))
            if self.progress is not None:
                self.done += len(chunk)
                self.progress(self.done, self.total)

    def _numbered(self) -> Iterator[tuple[int, Any]]:
        # Shared by the chunk workers; grows the result slots of unsized input as it reads.
        for item in self.source:
            index = self.taken
            self.taken += 1
            if self.total is None:
                self.results.append(_PENDING)
            yield index, item

    # --- the answer -------------------------------------------------------------------------

    def outcome(self) -> tuple[list[Any], list[dict[str, Any]]]:
        """The successful outputs in input order, and the error records in index order."""
        self.errors.sort(key=_by_index)
        if not self.errors:
            # Nothing failed, so nothing stopped early: every slot is filled. No copy.
            return self.results, self.errors
        return [value for value in self.results if value is not _PENDING], self.errors


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
    """Run `count` worker tasks; if one fails or we are cancelled, stop them all."""
    tasks = [asyncio.create_task(worker()) for _ in range(count)]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _worker_count(max_workers: int, total: int | None, chunk_size: int) -> int:
    return max_workers if total is None else min(max_workers, -(-total // chunk_size))


def _record(index: int, item: Any, message: str, error_type: str) -> dict[str, Any]:
    return {"index": index, "item": item, "error": message, "error_type": error_type}


def _by_index(record: dict[str, Any]) -> int:
    return record["index"]


def _summary(errors: list[dict[str, Any]], total: int, done: int) -> str:
    first = errors[0]
    text = (
        f"{len(errors)} of {total} items failed; first: item {first['index']}: "
        f"{format_error(first['error'], first['error_type'])}"
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
