"""parallel_fetch: all at once, a timeout per operation, failures kept apart, order kept."""

from __future__ import annotations

import asyncio

import pytest

from kflow_runtime.patterns import ParallelFetchError, parallel_fetch


async def test_all_operations_run_concurrently():
    # Each operation waits until all have started: run one after another, they never would.
    started = 0
    all_started = asyncio.Event()

    def operation(value: str):
        async def run() -> str:
            nonlocal started
            started += 1
            if started == 4:
                all_started.set()
            await all_started.wait()
            return value

        return run

    out = await parallel_fetch(
        {k: operation(k.upper()) for k in ("a", "b", "c", "d")}, timeout_per_operation=5
    )
    assert out["successful"] == {"a": "A", "b": "B", "c": "C", "d": "D"}
    assert out["failed"] == {}


async def test_a_hanging_operation_times_out_alone():
    async def hang() -> None:
        await asyncio.Event().wait()

    async def quick() -> int:
        return 1

    out = await parallel_fetch({"slow": hang, "fast": quick}, timeout_per_operation=0.05)

    assert out["successful"] == {"fast": 1}
    assert out["failed"] == {"slow": "TimeoutError: operation timed out after 0.05s"}
    assert out["statistics"]["total"] == 2
    assert out["statistics"]["successful"] == 1
    assert out["statistics"]["failed"] == 1
    assert out["statistics"]["duration"] >= 0


async def test_failures_are_described_by_type_and_message():
    async def value_error() -> None:
        raise ValueError("bad input")

    async def bare() -> None:
        raise RuntimeError()

    async def own_timeout() -> None:
        raise TimeoutError("upstream took too long")

    out = await parallel_fetch({"v": value_error, "b": bare, "t": own_timeout})
    assert out["failed"] == {
        "v": "ValueError: bad input",
        "b": "RuntimeError",
        "t": "TimeoutError: upstream took too long",
    }


async def test_keys_keep_the_given_order_whatever_finishes_first():
    # "third" finishes first, then "second", then "first".
    done = {name: asyncio.Event() for name in ("first", "second", "third")}

    def operation(name: str, after: str | None):
        async def run() -> str:
            if after:
                await done[after].wait()
            done[name].set()
            return name

        return run

    out = await parallel_fetch(
        {
            "first": operation("first", "second"),
            "second": operation("second", "third"),
            "third": operation("third", None),
        }
    )
    assert list(out["successful"]) == ["first", "second", "third"]


async def test_continue_on_error_false_raises_naming_every_failed_key():
    finished = []

    async def ok() -> str:
        await asyncio.sleep(0)
        finished.append("ok")
        return "fine"

    async def broken() -> None:
        raise ConnectionError("refused")

    async def also_broken() -> None:
        raise KeyError("id")

    with pytest.raises(ParallelFetchError) as caught:
        await parallel_fetch({"ok": ok, "db": broken, "api": also_broken}, continue_on_error=False)

    message = str(caught.value)
    assert message.startswith("2 of 3 operations failed: ")
    assert "db (ConnectionError: refused)" in message and "api (KeyError: 'id')" in message
    assert caught.value.result["successful"] == {"ok": "fine"}
    assert finished == ["ok"]  # the others ran to their end


async def test_no_timeout_and_no_operations():
    async def one() -> int:
        return 1

    assert (await parallel_fetch({"x": one}, timeout_per_operation=None))["successful"] == {"x": 1}
    empty = await parallel_fetch({})
    assert empty["successful"] == {} and empty["statistics"]["total"] == 0


def test_invalid_timeout_fails_at_the_call():
    with pytest.raises(ValueError):
        asyncio.run(parallel_fetch({}, timeout_per_operation=0))
