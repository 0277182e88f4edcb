"""The executor seam: what a distributed engine (Dask next) plugs into."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from typing import Any

import pytest

from kflow_runtime.patterns import (
    AsyncExecutor,
    ProcessExecutor,
    ThreadExecutor,
    get_executor,
    parallel_map,
    register_executor,
    run_chunk_sync,
)


class RemoteLike:
    """Stands in for a cluster engine: runs each chunk with run_chunk_sync, as a remote worker
    would, and answers the outcomes in reverse order to show order does not matter."""

    def __init__(self) -> None:
        self.chunks: list[list[tuple[int, Any]]] = []
        self.sessions = 0
        self.closed = 0

    def chunk_size(self, total: int | None, max_workers: int) -> int:
        return 4

    @asynccontextmanager
    async def session(self, process_item, *, max_workers, timeout_per_item):
        self.sessions += 1

        async def run_chunk(chunk):
            self.chunks.append(chunk)
            await asyncio.sleep(0)
            return list(reversed(run_chunk_sync(process_item, chunk, timeout_per_item)))

        try:
            yield run_chunk
        finally:
            self.closed += 1


def halve(item: int) -> float:
    if item == 5:
        raise ZeroDivisionError("five")
    return item / 2


async def test_registered_engine_gets_chunks_of_index_item_and_keeps_the_contract():
    engine = RemoteLike()
    register_executor("remote-like", lambda: engine)

    out = await parallel_map(halve, range(10), executor="remote-like", continue_on_error=True)

    assert sorted(engine.chunks) == [
        [(0, 0), (1, 1), (2, 2), (3, 3)],
        [(4, 4), (5, 5), (6, 6), (7, 7)],
        [(8, 8), (9, 9)],
    ]
    assert out["results"] == [i / 2 for i in range(10) if i != 5]
    assert out["errors"] == [
        {"index": 5, "item": 5, "error": "five", "error_type": "ZeroDivisionError"}
    ]
    assert out["statistics"]["batches"] == 3
    assert (engine.sessions, engine.closed) == (1, 1)


async def test_executor_instance_can_be_passed_directly():
    engine = RemoteLike()
    out = await parallel_map(halve, [2, 4], executor=engine)
    assert out["results"] == [1.0, 2.0]
    assert engine.sessions == 1


class Broken(RemoteLike):
    @asynccontextmanager
    async def session(self, process_item, *, max_workers, timeout_per_item):
        async def run_chunk(chunk):
            raise ConnectionError("worker lost")

        yield run_chunk


async def test_an_engine_failure_fails_every_item_of_its_chunk():
    out = await parallel_map(halve, range(6), executor=Broken(), continue_on_error=True)
    assert out["results"] == []
    assert [e["index"] for e in out["errors"]] == list(range(6))
    assert {(e["error"], e["error_type"]) for e in out["errors"]} == {
        ("worker lost", "ConnectionError")
    }


async def test_an_engine_that_loses_outcomes_is_an_error_not_silence():
    class Lossy(RemoteLike):
        @asynccontextmanager
        async def session(self, process_item, *, max_workers, timeout_per_item):
            async def run_chunk(chunk):
                return run_chunk_sync(process_item, chunk, timeout_per_item)[:-1]

            yield run_chunk

    with pytest.raises(RuntimeError, match="answered 3 outcomes for a chunk of 4"):
        await parallel_map(halve, range(8), executor=Lossy())


def test_get_executor_names_the_builtin_engines():
    assert isinstance(get_executor("async"), AsyncExecutor)
    assert isinstance(get_executor("thread"), ThreadExecutor)
    assert isinstance(get_executor("process"), ProcessExecutor)
    with pytest.raises(ValueError, match=r"unknown executor 'nope'; registered: .*async"):
        get_executor("nope")
    with pytest.raises(ValueError):
        register_executor("", lambda: AsyncExecutor())
    with pytest.raises(TypeError):
        register_executor("x", "not callable")  # type: ignore[arg-type]


async def test_async_executor_session_runs_a_chunk_item_by_item():
    async def double(item: int) -> int:
        if item < 0:
            raise ValueError("negative")
        return item * 2

    async with AsyncExecutor().session(double, max_workers=1, timeout_per_item=1.0) as run:
        outcomes = await run([(0, 3), (1, -1)])
    assert outcomes == [(0, True, 6), (1, False, ("negative", "ValueError"))]


async def test_thread_executor_refuses_a_coroutine_function():
    async def coro(item: int) -> int:
        return item

    with pytest.raises(TypeError, match="executor='async'"):
        await parallel_map(coro, [1], executor="thread")


def test_run_chunk_sync_records_errors_and_times_out_sync_items():
    def work(item: int) -> int:
        if item == 1:
            raise KeyError("k")
        if item == 2:
            time.sleep(5)
        return item

    outcomes = run_chunk_sync(work, [(10, 0), (11, 1), (12, 2)], 0.05)
    assert outcomes[0] == (10, True, 0)
    assert outcomes[1] == (11, False, ("'k'", "KeyError"))
    assert outcomes[2][:2] == (12, False)
    assert outcomes[2][2][1] == "TimeoutError"


def test_run_chunk_sync_runs_coroutine_functions_too():
    async def work(item: int) -> int:
        await asyncio.sleep(0)
        return -item

    assert run_chunk_sync(work, [(0, 1), (1, 2)], None) == [(0, True, -1), (1, True, -2)]
    assert run_chunk_sync(work, [(0, 3)], 1.0) == [(0, True, -3)]
