"""batch_process: hand items to `process_batch` in chunks of `batch_size`, one chunk at a time."""

from __future__ import annotations

import asyncio
import reprlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import aclosing
from typing import Any

from kflow_runtime.observe import emit
from kflow_runtime.run import CHECKPOINTING, is_cancellation

from ._errors import PatternError, error_message, format_error

_END: Any = object()  # queued when the stream's reader stops, for whatever reason
_Done = tuple[list[Any], int, int]  # results, items and batches already processed
_ITEMS = reprlib.Repr()  # the failed batch, shortened, in a message
_ITEMS.maxlist, _ITEMS.maxstring, _ITEMS.maxother = 5, 40, 40


class BatchError(PatternError):
    """A batch failed: what was done before it is kept, not dropped.

    `processed_count` and `batches` count the batches that succeeded, `results` holds their
    outputs, `failed_batch` the index (0-based) and the items of the one that failed.
    `partial` is all of that as one dict: the run puts it in the envelope's `partial`.
    """

    def __init__(self, message: str, *, results: list[Any], processed_count: int,
                 batches: int, failed_batch: int, failed_items: list[Any]) -> None:
        super().__init__(message)
        self.results = results
        self.processed_count = processed_count
        self.batches = batches
        self.failed_batch = failed_batch
        self.failed_items = failed_items
        self.partial = {
            "results": results, "processed_count": processed_count, "batches": batches,
            "failed_batch": {"index": failed_batch, "items": failed_items},
        }


async def batch_process(
    process_batch: Callable[[list[Any]], Awaitable[list[Any]]],
    items: Iterable[Any] | AsyncIterable[Any],
    *,
    batch_size: int = 100,
    flush_interval: float | None = None,
) -> dict[str, Any]:
    """Run `process_batch` on each chunk; return `{"results", "processed_count", "batches"}`.

    `results` concatenates what each call returned. `items` may be an async iterable; then,
    with `flush_interval`, a partial chunk is processed once that many seconds have passed
    since its first item arrived, even if the stream is quiet. The last partial chunk is
    always processed; if an async stream fails, the items it gave are processed first.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if flush_interval is not None and not flush_interval > 0:
        raise ValueError(f"flush_interval must be None or > 0 seconds, got {flush_interval!r}")
    checkpointing = CHECKPOINTING.get()
    if checkpointing is not None and not isinstance(items, AsyncIterable):
        # A durable run: each batch's results are stored as it ends, and a resume skips the
        # batches stored. A stream cannot be replayed by index, so it is not checkpointed.
        from kflow_runtime.durable import checkpointed_batches

        async def batches(todo: list[Any], record: Any, done: _Done) -> dict[str, Any]:
            return await _process(process_batch, todo, batch_size, flush_interval, record, done)

        return await checkpointed_batches(checkpointing, list(items), batch_size, batches)
    return await _process(process_batch, items, batch_size, flush_interval, None)


async def _process(
    process_batch: Callable[[list[Any]], Awaitable[list[Any]]],
    items: Iterable[Any] | AsyncIterable[Any],
    batch_size: int,
    flush_interval: float | None,
    record: Callable[[int, int, list[Any]], Awaitable[None]] | None,
    done: _Done = ([], 0, 0),
) -> dict[str, Any]:
    # `done`: what a durable run had stored before it resumed (results, items, batches), so
    # that counts, the answer and a BatchError read as if the run had never stopped.
    stored, processed, batches = done
    results: list[Any] = list(stored)

    async def run(chunk: list[Any]) -> None:
        nonlocal processed, batches
        try:
            out = await process_batch(chunk)
        except BaseException as exc:
            if is_cancellation(exc):
                raise  # the run is being cancelled; the node (not the batch) reports it
            first = processed
            raise BatchError(
                f"batch {batches} (items {first}-{first + len(chunk) - 1} of the input: "
                f"{_ITEMS.repr(chunk)}) failed: {format_error(error_message(exc), type(exc).__name__)}"
                f"; {processed} items in {batches} earlier batches were processed (their "
                f"results are kept: the envelope's `partial`)",
                results=results, processed_count=processed, batches=batches,
                failed_batch=batches, failed_items=list(chunk),
            ) from exc
        if out is None:
            raise TypeError("process_batch returned None; it must return the batch's results list")
        if record is not None:
            out = list(out)
            await record(processed, len(chunk), out)
        results.extend(out)
        emit("kflow.batch.done", {"kflow.batch.index": batches, "kflow.batch.first": processed,
                                  "kflow.batch.size": len(chunk)})
        processed += len(chunk)
        batches += 1

    if isinstance(items, AsyncIterable):
        async with aclosing(_stream_chunks(items, batch_size, flush_interval)) as chunks:
            async for chunk in chunks:
                await run(chunk)
    else:
        for chunk in _chunks(items, batch_size):
            await run(chunk)
    return {"results": results, "processed_count": processed, "batches": batches}


def _chunks(items: Iterable[Any], batch_size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    try:
        for item in items:
            chunk.append(item)
            if len(chunk) == batch_size:
                yield chunk
                chunk = []
    except Exception:
        if chunk:
            yield chunk  # the items already read are processed before the error propagates
        raise
    if chunk:
        yield chunk


async def _stream_chunks(
    items: AsyncIterable[Any], batch_size: int, flush_interval: float | None
) -> AsyncIterator[list[Any]]:
    if flush_interval is None:
        chunk: list[Any] = []
        try:
            async for item in items:
                chunk.append(item)
                if len(chunk) == batch_size:
                    yield chunk
                    chunk = []
        except Exception:
            if chunk:
                yield chunk
            raise
        if chunk:
            yield chunk
        return

    # A reader task feeds a queue so that waiting for the next item can time out without
    # cancelling the stream itself (that would close an async generator for good).
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    room = asyncio.Semaphore(batch_size)  # the reader stays at most one chunk ahead

    async def read() -> None:
        async for item in items:
            await room.acquire()
            queue.put_nowait((loop.time(), item))

    def reader_done(task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            task.exception()  # retrieved here; re-raised below once the items are flushed
        queue.put_nowait(_END)

    reader = asyncio.create_task(read())
    reader.add_done_callback(reader_done)
    try:
        chunk = []
        deadline = 0.0
        while True:
            if chunk and loop.time() >= deadline:
                yield chunk
                chunk = []
            if chunk:
                try:
                    async with asyncio.timeout_at(deadline):
                        entry = await queue.get()
                except TimeoutError:
                    continue  # flushed at the top of the loop
            else:
                entry = await queue.get()
            if entry is _END:
                break
            room.release()
            arrived, item = entry
            if not chunk:
                deadline = arrived + flush_interval
            chunk.append(item)
            if len(chunk) == batch_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
        if not reader.cancelled() and (error := reader.exception()) is not None:
            raise error
    finally:
        reader.cancel()
