"""parallel_map: bounds, order, accounting of every item, stopping, timeouts, executors.

Nothing here passes or fails on timing: in-flight items, tasks, threads and processes are
counted; the short timeouts only make a hung item give up sooner.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from itertools import count

import pytest

from kflow_runtime.patterns import ParallelMapError, parallel_map


class InFlight:
    """Counts items in flight and asyncio tasks alive, keeping the peaks."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.peak_tasks = 0

    def enter(self) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)
        self.peak_tasks = max(self.peak_tasks, len(asyncio.all_tasks()))

    def leave(self) -> None:
        self.now -= 1


async def test_100k_items_at_most_max_workers_in_flight_in_input_order():
    counter = InFlight()
    tasks_before = len(asyncio.all_tasks())

    async def process_item(item: int) -> int:
        counter.enter()
        await asyncio.sleep(0)  # suspend, so other workers get to start items
        counter.leave()
        return item * 2

    out = await parallel_map(process_item, range(100_000), max_workers=50, timeout_per_item=None)

    assert counter.peak == 50
    assert out["results"] == [i * 2 for i in range(100_000)]
    assert out["errors"] == []
    # A fixed pool: the worker tasks, never a task per item.
    assert counter.peak_tasks <= tasks_before + 50
    stats = out["statistics"]
    assert (stats["total"], stats["successful"], stats["failed"]) == (100_000, 100_000, 0)
    assert stats["max_workers"] == 50


async def test_with_default_timeout_tasks_stay_bounded_too():
    counter = InFlight()
    tasks_before = len(asyncio.all_tasks())

    async def process_item(item: int) -> int:
        counter.enter()
        await asyncio.sleep(0)
        counter.leave()
        return item

    out = await parallel_map(process_item, range(10_000), max_workers=20)
    assert out["results"] == list(range(10_000))
    assert counter.peak == 20
    assert counter.peak_tasks <= tasks_before + 20


async def test_every_tenth_failing_with_continue_on_error_accounts_for_every_item():
    async def process_item(item: int) -> int:
        if item % 10 == 0:
            raise ValueError(f"bad {item}")
        return item

    out = await parallel_map(process_item, range(100_000), max_workers=50, continue_on_error=True)

    assert out["results"] == [i for i in range(100_000) if i % 10]
    assert len(out["errors"]) == 10_000
    assert [e["index"] for e in out["errors"]] == list(range(0, 100_000, 10))
    assert out["errors"][3] == {
        "index": 30,
        "item": 30,
        "error": "bad 30",
        "error_type": "ValueError",
    }
    stats = out["statistics"]
    assert (stats["total"], stats["successful"], stats["failed"]) == (100_000, 90_000, 10_000)


async def test_error_without_message_is_named_by_its_class():
    async def process_item(item: int) -> int:
        raise RuntimeError()

    out = await parallel_map(process_item, [1], continue_on_error=True)
    assert out["errors"] == [
        {"index": 0, "item": 1, "error": "RuntimeError", "error_type": "RuntimeError"}
    ]


@pytest.mark.parametrize("suspends", [True, False], ids=["suspending", "instant"])
async def test_first_failure_stops_new_items_and_raises_a_summary(suspends: bool):
    started: list[int] = []
    finished: list[int] = []
    failed_at: list[int] = []

    async def process_item(item: int) -> int:
        assert not failed_at, f"item {item} started after the failure"
        started.append(item)
        if suspends:
            await asyncio.sleep(0)
        if item == 4:
            failed_at.append(item)
            raise ValueError("boom")
        finished.append(item)
        return item

    with pytest.raises(ParallelMapError) as caught:
        await parallel_map(process_item, list(range(100)), max_workers=5)

    error = caught.value
    assert re.match(r"1 of 100 items failed; first: item 4: ValueError: boom", str(error))
    assert "items not started" in str(error)
    assert error.errors == [{"index": 4, "item": 4, "error": "boom", "error_type": "ValueError"}]
    # Items in flight when it failed were let finish.
    assert sorted(finished + failed_at) == sorted(started)
    assert len(started) < 100
    assert error.statistics["failed"] == 1


async def test_summary_counts_all_failures_and_names_the_lowest_index():
    async def process_item(item: int) -> int:
        await asyncio.sleep(0)
        if item in (2, 3):
            raise KeyError(item)
        return item

    with pytest.raises(ParallelMapError) as caught:
        await parallel_map(process_item, range(4), max_workers=4)
    assert str(caught.value) == "2 of 4 items failed; first: item 2: KeyError: 2"


async def test_per_item_timeout_gives_a_timeout_error_record():
    async def process_item(item: int) -> int:
        if item == 3:
            await asyncio.Event().wait()  # never set
        await asyncio.sleep(0)
        return item

    out = await parallel_map(
        process_item, range(10), max_workers=3, timeout_per_item=0.05, continue_on_error=True
    )

    assert out["results"] == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    [record] = out["errors"]
    assert record["index"] == 3
    assert record["error_type"] == "TimeoutError"
    assert "timed out" in record["error"]


async def test_timeout_applies_to_each_item_not_to_the_worker():
    # One worker runs many items back to back, each well inside its own timeout.
    async def process_item(item: int) -> int:
        await asyncio.sleep(0.002)
        return item

    out = await parallel_map(process_item, range(60), max_workers=1, timeout_per_item=0.05)
    assert out["results"] == list(range(60))


async def test_user_timeout_inside_item_is_reported_as_the_users_error():
    async def process_item(item: int) -> int:
        try:
            async with asyncio.timeout(0.01):
                await asyncio.Event().wait()
        except TimeoutError:
            raise TimeoutError(f"upstream slow for {item}") from None
        return item

    out = await parallel_map(process_item, [7], timeout_per_item=10.0, continue_on_error=True)
    assert out["errors"][0]["error"] == "upstream slow for 7"


async def test_item_that_swallows_the_timeout_does_not_break_later_items():
    async def process_item(item: int) -> int:
        if item == 0:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                return -1  # swallowed: the item ends normally
        if item == 2:
            await asyncio.Event().wait()  # times out for real
        await asyncio.sleep(0)
        return item

    out = await parallel_map(
        process_item, range(5), max_workers=1, timeout_per_item=0.05, continue_on_error=True
    )
    assert out["results"] == [-1, 1, 3, 4]
    assert [(e["index"], e["error_type"]) for e in out["errors"]] == [(2, "TimeoutError")]


async def test_cancelling_the_map_cancels_its_workers():
    tasks_before = asyncio.all_tasks()
    started = asyncio.Event()

    async def process_item(item: int) -> int:
        started.set()
        await asyncio.Event().wait()
        return item

    map_task = asyncio.create_task(parallel_map(process_item, range(100), max_workers=5))
    await started.wait()
    map_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await map_task
    assert asyncio.all_tasks() == tasks_before


async def test_generator_input_is_read_lazily_and_stops_with_the_map():
    pulled = count()

    def endless():  # as good as endless; bounded so a broken stop fails instead of hanging
        while (item := next(pulled)) < 200_000:
            yield item

    async def process_item(item: int) -> int:
        if item == 20:
            raise ValueError("stop here")
        return item

    with pytest.raises(ParallelMapError):
        await parallel_map(process_item, endless(), max_workers=4)
    assert next(pulled) < 1_000  # read ahead a little, never materialised


async def test_unsized_input_keeps_order_and_reports_total_done():
    async def process_item(item: int) -> int:
        if item % 3 == 0:
            await asyncio.sleep(0)
        return -item

    out = await parallel_map(process_item, (i for i in range(1_000)), max_workers=7)
    assert out["results"] == [-i for i in range(1_000)]
    assert out["statistics"]["total"] == 1_000


async def test_an_error_from_the_items_iterable_itself_propagates():
    def broken():
        yield 1
        yield 2
        raise RuntimeError("source broke")

    async def process_item(item: int) -> int:
        await asyncio.sleep(0)
        return item

    with pytest.raises(RuntimeError, match="source broke"):
        await parallel_map(process_item, broken(), max_workers=3)


@pytest.mark.parametrize("timeout", [None, 5.0], ids=["no-timeout", "timeout"])
async def test_batch_size_never_cuts_concurrency(timeout):
    # The guide's "I/O-intensive tasks": max_workers=50, batch_size=100, on 200 items.
    counter = InFlight()

    async def process_item(item: int) -> int:
        counter.enter()
        await asyncio.sleep(0)
        counter.leave()
        return item

    out = await parallel_map(
        process_item, list(range(200)), max_workers=50, batch_size=100, timeout_per_item=timeout
    )
    assert out["results"] == list(range(200))
    assert counter.peak == 50
    assert out["statistics"]["batches"] == 2


async def test_batch_size_feeds_the_input_that_many_items_at_a_time():
    pulled = 0
    read_ahead: list[int] = []  # items read but not yet started, as each item starts
    started = 0

    def source():
        nonlocal pulled
        for item in range(100):
            pulled += 1
            yield item

    async def process_item(item: int) -> int:
        nonlocal started
        started += 1
        read_ahead.append(pulled - started)
        await asyncio.sleep(0)
        return item

    out = await parallel_map(process_item, source(), max_workers=4, batch_size=7)

    assert out["results"] == list(range(100))
    assert out["statistics"]["batches"] == 15  # ceil(100 / 7) batches read
    assert max(read_ahead) < 7


def test_batch_size_never_cuts_concurrency_of_threads():
    # 20 items in batches of 10 used to make two chunks, so two threads: the barrier of four
    # would break. Every item now starts as soon as one of the four threads is free.
    barrier = threading.Barrier(4, timeout=5)

    def process_item(item: int) -> int:
        barrier.wait()
        return item

    out = asyncio.run(parallel_map(
        process_item, range(20), max_workers=4, batch_size=10, executor="thread",
        timeout_per_item=None,
    ))
    assert out["results"] == list(range(20))


async def test_idle_workers_take_over_the_unstarted_tail_of_a_busy_worker():
    # The first worker meets 300 instant items alone and reads ahead in ever larger blocks;
    # then items start to suspend. Once the source is dry, the other worker must take over
    # items from the first one's block instead of leaving them to it.
    worker_of: dict[int, int] = {}

    async def process_item(item: int) -> int:
        worker_of[item] = id(asyncio.current_task())
        if item >= 300:
            await asyncio.sleep(0)
        return item

    out = await parallel_map(process_item, list(range(600)), max_workers=2)

    assert out["results"] == list(range(600))
    assert len({worker_of[i] for i in range(301, 511)}) == 2


@pytest.mark.parametrize("timeout", [None, 5.0], ids=["no-timeout", "timeout"])
async def test_items_that_suspend_start_in_input_order(timeout):
    started: list[int] = []

    async def process_item(item: int) -> int:
        started.append(item)
        await asyncio.sleep(0)
        return item

    out = await parallel_map(process_item, list(range(10_000)), max_workers=50,
                             timeout_per_item=timeout)
    assert out["results"] == list(range(10_000))
    assert started == list(range(10_000))


@pytest.mark.parametrize("source", [list, iter], ids=["list", "iterator"])
async def test_on_batch_reports_stretches_that_cover_every_item_once(source):
    # Items suspend for a varying number of turns, so workers compete, finish at different
    # times and steal from each other at the end.
    batches: list[tuple[int, int]] = []

    async def process_item(item: int) -> int:
        for _ in range(item % 7):
            await asyncio.sleep(0)
        return item

    out = await parallel_map(
        process_item, source(range(5_000)), max_workers=9,
        progress=lambda done, total: None,
        on_batch=lambda started, ended, first, size: batches.append((first, size)),
    )
    assert out["results"] == list(range(5_000))
    covered = sorted(i for first, size in batches for i in range(first, first + size))
    assert covered == list(range(5_000))


async def test_progress_is_reported_up_to_the_total():
    calls: list[tuple[int, int | None]] = []

    async def process_item(item: int) -> int:
        await asyncio.sleep(0)
        return item

    await parallel_map(process_item, range(50), max_workers=5, progress=lambda *a: calls.append(a))
    assert calls[-1] == (50, 50)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)

    calls.clear()
    await parallel_map(process_item, iter(range(5)), progress=lambda *a: calls.append(a))
    assert calls[-1] == (5, None)


async def test_empty_input():
    async def process_item(item: int) -> int:
        return item

    out = await parallel_map(process_item, [])
    assert out["results"] == [] and out["errors"] == []
    assert out["statistics"]["total"] == 0


def test_invalid_options_fail_at_the_call():
    async def process_item(item: int) -> int:
        return item

    for bad in ({"max_workers": 0}, {"batch_size": 0}, {"timeout_per_item": 0}):
        with pytest.raises(ValueError):
            asyncio.run(parallel_map(process_item, [1], **bad))
    with pytest.raises(ValueError, match="unknown executor 'nosuch'"):
        asyncio.run(parallel_map(process_item, [1], executor="nosuch"))


async def test_sync_process_item_runs_in_threads_off_the_loop():
    loop_thread = threading.get_ident()
    threads: set[int] = set()

    def process_item(item: int) -> int:
        threads.add(threading.get_ident())
        return item + 1

    out = await parallel_map(process_item, range(200), max_workers=4)

    assert out["results"] == list(range(1, 201))
    assert loop_thread not in threads
    assert 1 <= len(threads) <= 4


async def test_sync_process_item_never_blocks_the_loop():
    # Each item blocks its thread until a coroutine on the loop releases it: if an item ran
    # on the loop's thread, the release could never happen.
    released = threading.Event()

    def process_item(item: int) -> int:
        if not released.wait(timeout=10):
            raise RuntimeError("the loop was blocked")
        return item

    async def release() -> None:
        await asyncio.sleep(0)
        released.set()

    out, _ = await asyncio.gather(
        parallel_map(process_item, range(3), max_workers=3, timeout_per_item=None), release()
    )
    assert out["results"] == [0, 1, 2]


async def test_sync_process_item_timeout_and_errors_in_threads():
    def process_item(item: int) -> int:
        if item == 1:
            time.sleep(0.3)
        if item == 2:
            raise ValueError("two")
        return item

    out = await parallel_map(
        process_item, range(4), max_workers=2, timeout_per_item=0.05, continue_on_error=True
    )
    assert out["results"] == [0, 3]
    assert [(e["index"], e["error_type"], e["error"]) for e in out["errors"]] == [
        (1, "TimeoutError", "item timed out after 0.05s"),
        (2, "ValueError", "two"),
    ]


def pid_of(item: int) -> tuple[int, int]:
    """Module level, so the process pool can pickle it."""
    if item == 13:
        raise ValueError("unlucky")
    return item, os.getpid()


def sleepy(item: int) -> int:
    if item == 1:
        time.sleep(5)
    return item


async def test_process_executor_runs_items_in_other_processes():
    out = await parallel_map(
        pid_of, range(40), max_workers=2, executor="process", continue_on_error=True
    )

    assert [item for item, _ in out["results"]] == [i for i in range(40) if i != 13]
    pids = {pid for _, pid in out["results"]}
    assert os.getpid() not in pids
    assert out["errors"] == [
        {"index": 13, "item": 13, "error": "unlucky", "error_type": "ValueError"}
    ]
    assert out["statistics"]["batches"] >= 2  # items travel in chunks


async def test_process_executor_times_out_a_stuck_item():
    out = await parallel_map(
        sleepy,
        range(3),
        max_workers=2,
        batch_size=1,
        executor="process",
        timeout_per_item=0.1,
        continue_on_error=True,
    )
    assert out["results"] == [0, 2]
    assert out["errors"][0]["index"] == 1
    assert out["errors"][0]["error_type"] == "TimeoutError"


async def negate(item: int) -> int:
    await asyncio.sleep(0)
    return -item


def unpicklable_for_two(item: int):
    if item == 2:
        return lambda: item  # a value that cannot travel back to the parent
    return item


async def test_process_executor_runs_coroutine_functions_too():
    out = await parallel_map(negate, range(5), max_workers=2, executor="process")
    assert out["results"] == [0, -1, -2, -3, -4]


async def test_process_executor_fails_the_chunk_whose_result_cannot_travel():
    # 40 items on 2 processes travel in chunks of 5; batch_size=2 makes them chunks of 2.
    out = await parallel_map(
        unpicklable_for_two,
        range(40),
        max_workers=2,
        batch_size=2,
        executor="process",
        continue_on_error=True,
    )
    assert out["results"] == [i for i in range(40) if i not in (2, 3)]
    assert [e["index"] for e in out["errors"]] == [2, 3]


async def test_statistics_name_the_duration_as_kailash_does_too():
    # Issue 14.9: code moving from Kailash reads statistics["total_duration"].
    async def process_item(item: int) -> int:
        return item

    stats = (await parallel_map(process_item, [1, 2, 3]))["statistics"]
    assert stats["total_duration"] == stats["duration"] >= 0
    assert stats["items_per_second"] > 0
