"""parallel_map under faults: BaseExceptions from item code, cancellation, stuck threads.

Item code that raises a BaseException (CancelledError of its own, SystemExit, sys.exit() in a
thread, a user's BaseException subclass) fails that item only. Only a cancellation of the map
from outside (or Ctrl-C's KeyboardInterrupt) propagates, and only after every task and thread
item the map started has ended. Assertions are on records and on the order of events, never on
timing; sleeps only hold a state long enough for the broken behaviour to show.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path

import pytest

from kflow_runtime.patterns import ParallelMapError, parallel_map


class Halt(BaseException):
    """A user's BaseException subclass."""


async def test_cancelled_error_raised_by_the_item_itself_fails_that_item():
    async def process_item(item: int) -> int:
        await asyncio.sleep(0)
        if item == 2:
            raise asyncio.CancelledError()  # nobody cancelled the map
        return item

    for timeout in (None, 5.0):
        out = await parallel_map(
            process_item, range(5), max_workers=2, timeout_per_item=timeout,
            continue_on_error=True,
        )
        assert out["results"] == [0, 1, 3, 4]
        [record] = out["errors"]
        assert (record["index"], record["item"], record["error_type"]) == (2, 2, "CancelledError")
        assert "CancelledError" in record["error"] and "item" in record["error"]


@pytest.mark.parametrize(
    ("exc", "error_type", "text"),
    [(SystemExit(3), "SystemExit", "3"), (Halt("stop"), "Halt", "stop")],
    ids=["SystemExit", "user-BaseException"],
)
@pytest.mark.parametrize("timeout", [None, 5.0], ids=["no-timeout", "timeout"])
def test_base_exception_raised_by_an_async_item_fails_that_item(exc, error_type, text, timeout):
    async def process_item(item: int) -> int:
        await asyncio.sleep(0)
        if item == 1:
            raise exc
        return item * 10

    async def main() -> dict:
        return await parallel_map(
            process_item, range(4), max_workers=2, timeout_per_item=timeout,
            continue_on_error=True,
        )

    out = asyncio.run(main())  # a BaseException escaping the map would escape asyncio.run
    assert out["results"] == [0, 20, 30]
    [record] = out["errors"]
    assert (record["index"], record["item"], record["error_type"]) == (1, 1, error_type)
    assert text in record["error"]


def test_sys_exit_inside_a_thread_item_fails_that_item():
    def process_item(item: int) -> int:
        if item == 2:
            sys.exit(4)
        return item

    async def main() -> dict:
        return await parallel_map(
            process_item, range(5), max_workers=2, executor="thread", continue_on_error=True
        )

    out = asyncio.run(main())
    assert out["results"] == [0, 1, 3, 4]
    [record] = out["errors"]
    assert (record["index"], record["error_type"]) == (2, "SystemExit")
    assert "4" in record["error"]


def test_sys_exit_message_masks_credentials():
    async def process_item(item: int) -> int:
        sys.exit("cannot reach postgresql://app:s3cret@db/orders")

    out = asyncio.run(parallel_map(process_item, [1], continue_on_error=True))
    assert out["errors"][0]["error"] == (
        "sys.exit('cannot reach postgresql://app:***@db/orders') inside the item"
    )


def test_base_exception_without_continue_on_error_fails_the_map_with_a_summary():
    async def process_item(item: int) -> int:
        if item == 0:
            raise SystemExit()
        return item

    async def main() -> None:
        await parallel_map(process_item, range(3), max_workers=1)

    with pytest.raises(ParallelMapError, match=r"1 of 3 items failed; first: item 0: SystemExit"):
        asyncio.run(main())


def test_base_exception_from_a_process_item_fails_that_item():
    out = asyncio.run(parallel_map(
        exits_on_two, range(4), max_workers=2, executor="process", batch_size=1,
        continue_on_error=True,
    ))
    assert out["results"] == [0, 1, 3]
    assert [(e["index"], e["error_type"]) for e in out["errors"]] == [(2, "SystemExit")]


def exits_on_two(item: int) -> int:
    """Module level, so the process pool can pickle it."""
    if item == 2:
        sys.exit(2)
    return item


async def test_cancelling_the_map_waits_for_the_thread_items_it_started():
    events: list[str] = []
    started = threading.Event()
    release = threading.Event()

    def process_item(item: int) -> int:
        started.set()
        release.wait(10)
        events.append("item ended")
        return item

    async def unblock_soon() -> None:
        await asyncio.sleep(0.2)  # the map is awaiting by now; it must not return early
        release.set()

    map_task = asyncio.create_task(
        parallel_map(process_item, range(1), max_workers=1, timeout_per_item=None)
    )
    await asyncio.to_thread(started.wait, 10)
    map_task.cancel()
    unblocker = asyncio.create_task(unblock_soon())
    with pytest.raises(asyncio.CancelledError):
        await map_task
    events.append("map raised")
    await unblocker
    assert events == ["item ended", "map raised"]


def test_keyboard_interrupt_from_an_item_propagates_after_the_other_items_are_cancelled():
    events: list[str] = []

    async def process_item(item: int) -> int:
        if item == 0:
            await asyncio.sleep(0)
            raise KeyboardInterrupt
        try:
            await asyncio.Event().wait()
        finally:
            events.append(f"item {item} ended")
        return item

    async def main() -> None:
        try:
            await parallel_map(process_item, range(3), max_workers=3)
        finally:
            events.append("map raised")

    # A bare loop, as in a long-lived process: asyncio.run's clean-up would hide a leak.
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(main())
        assert events == ["item 1 ended", "item 2 ended", "map raised"]
    finally:
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()


async def test_thread_item_queued_behind_timed_out_items_gets_its_full_timeout():
    # Items 0 and 1 time out but keep both threads busy; 2 and 3 must wait for a thread and
    # then run, their timeout counted from when they start, not from when they queued.
    gate = threading.Event()
    ran: list[int] = []

    def process_item(item: int) -> int:
        if item < 2:
            gate.wait(10)
        ran.append(item)
        return item

    async def open_gate_later() -> None:
        await asyncio.sleep(0.3)  # well past the 0.05 s timeout of anything queued
        gate.set()

    out, _ = await asyncio.gather(
        parallel_map(
            process_item, range(4), max_workers=2, timeout_per_item=0.05,
            continue_on_error=True,
        ),
        open_gate_later(),
    )
    assert [(e["index"], e["error"]) for e in out["errors"]] == [
        (0, "item timed out after 0.05s"),
        (1, "item timed out after 0.05s"),
    ]
    assert out["results"] == [2, 3]
    # The timed-out items' threads were released with the gate; they end on their own time.
    for _ in range(500):
        if len(ran) == 4:
            break
        await asyncio.sleep(0.01)
    assert sorted(ran) == [0, 1, 2, 3]


def ends_slowly(marker: str) -> str:
    """Module level, so the process pool can pickle it: marks its start and its end."""
    Path(f"{marker}.started").touch()
    time.sleep(0.5)  # the map is cancelled meanwhile; it must wait for this
    Path(f"{marker}.ended").touch()
    return marker


async def test_cancelling_the_map_waits_for_the_process_chunks_it_started(tmp_path):
    marker = str(tmp_path / "item")
    map_task = asyncio.create_task(parallel_map(
        ends_slowly, [marker], max_workers=1, executor="process", timeout_per_item=None
    ))
    while not Path(f"{marker}.started").exists():
        await asyncio.sleep(0.01)
    map_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await map_task
    assert Path(f"{marker}.ended").exists()
