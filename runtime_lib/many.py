"""Many runs of one workflow in one process, with bounded concurrency.

`run_each` (a module's `run_many`) feeds runs through `parallel_map`, so they get its
bounded worker pool and keep their order, and, with `KFLOW_DASK_SCHEDULER` set, are
spread over the cluster like any other map. `stream_each` (behind `--inputs-jsonl`)
hands each envelope on as soon as it and every run before it have ended, so a long
file's results appear while it runs and an interrupted one keeps what finished.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from kflow_runtime.redact import mask

Envelope = dict[str, Any]


async def _one(run: Callable[..., Awaitable[Envelope]], options: dict[str, Any],
               inputs: dict[str, Any]) -> Envelope:
    return await run(inputs, **options)


def failed_envelope(key: str, message: str, *, workflow: str | None = None,
                    status: str = "failed") -> Envelope:
    """The envelope of a run that never got to run its nodes: `errors[key]` says why."""
    return {
        "status": status, "results": {}, "errors": {key: mask(message)}, "skipped": [],
        "recovered": {}, "attempts": {}, "execution_times": {}, "total_duration": 0.0,
        "workflow": workflow, "run_id": uuid.uuid4().hex,
    }


async def run_each(
    run: Callable[..., Awaitable[Envelope]],
    inputs_list: Iterable[dict[str, Any]],
    *,
    max_concurrency: int = 10,
    **options: Any,
) -> list[Envelope]:
    """One envelope per inputs, in order, with at most `max_concurrency` runs at once."""
    # Imported here: a module that never calls run_many should not pay for the patterns.
    from kflow_runtime.patterns.parallel_map import parallel_map

    inputs_list = list(inputs_list)
    outcome = await parallel_map(
        functools.partial(_one, run, options), inputs_list, max_workers=max_concurrency,
        timeout_per_item=None, continue_on_error=True,
    )
    if not outcome["errors"]:
        return outcome["results"]
    # A run that raised instead of returning its envelope (cancelled, or a bug) still gets
    # an envelope in its place, so the answer stays one per input.
    envelopes: list[Envelope] = []
    results = iter(outcome["results"])
    failures = {e["index"]: e for e in outcome["errors"]}
    for index in range(len(inputs_list)):
        if index in failures:
            record = failures[index]
            envelopes.append(failed_envelope("run", f"{record['error_type']}: {record['error']}"))
        else:
            envelopes.append(next(results))
    return envelopes


class Ready:
    """An item of `stream_each` whose envelope is already known (a line that is not JSON)."""

    __slots__ = ("envelope",)

    def __init__(self, envelope: Envelope) -> None:
        self.envelope = envelope


async def stream_each(
    run: Callable[..., Awaitable[Envelope]],
    items: Iterable[dict[str, Any] | Ready],
    emit: Callable[[Envelope], None],
    *,
    max_concurrency: int = 10,
    **options: Any,
) -> None:
    """Run the workflow once per item, at most `max_concurrency` at a time, and call
    `emit(envelope)` in input order as soon as a run and all before it have ended.

    `items` is read lazily, one item as a run slot frees up. A run that raises gets a
    failed envelope in its place. Cancelled (Ctrl-C), the runs in flight are cancelled and
    their envelopes (status "cancelled") emitted after those that finished, then the
    cancellation propagates. An exception from `emit` (a closed pipe) stops every run.
    """
    if not isinstance(max_concurrency, int) or max_concurrency < 1:
        raise ValueError(f"max_concurrency must be a positive int, got {max_concurrency!r}")
    source = enumerate(items)
    finished: dict[int, Envelope] = {}
    cursor = 0  # the next index to emit
    # Runs may get ahead of the slowest unfinished one by this many; bounds `finished`.
    room = asyncio.Semaphore(max_concurrency * 4)

    def flush() -> None:
        nonlocal cursor
        while cursor in finished:
            envelope = finished.pop(cursor)
            cursor += 1
            room.release()
            emit(envelope)

    async def worker() -> None:
        while True:
            await room.acquire()
            try:
                index, item = next(source)
            except StopIteration:
                room.release()
                return
            if isinstance(item, Ready):
                finished[index] = item.envelope
            else:
                try:
                    finished[index] = await _settled(run, item, options)
                except asyncio.CancelledError as exc:
                    # Kept for the final flush; the cancellation itself goes on.
                    finished[index] = getattr(exc, "envelope", None) or failed_envelope(
                        "run", "CancelledError: cancelled before the run started",
                        status="cancelled",
                    )
                    raise
            flush()

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(max_concurrency):
                group.create_task(worker())
    except asyncio.CancelledError:
        # Every run that started has its envelope by now, the cancelled ones too.
        flush()
        raise
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None


async def _settled(run: Callable[..., Awaitable[Envelope]], inputs: dict[str, Any],
                   options: dict[str, Any]) -> Envelope:
    started = time.perf_counter()
    try:
        return await run(inputs, **options)
    except Exception as exc:  # noqa: BLE001 - a bug in a run is that run's failure
        envelope = failed_envelope("run", f"{type(exc).__name__}: {exc}")
        envelope["total_duration"] = time.perf_counter() - started
        return envelope

