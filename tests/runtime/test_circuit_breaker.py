"""CircuitBreaker: the closed / open / half-open cycle and its output, on a hand-moved clock."""

from __future__ import annotations

import asyncio

import pytest

from kflow_runtime.patterns import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Service:
    """A dependency whose next answers the test scripts; counts the calls that reach it."""

    def __init__(self) -> None:
        self.calls = 0
        self.failing = False

    async def __call__(self) -> dict:
        self.calls += 1
        if self.failing:
            raise ConnectionError("service down")
        return {"data": self.calls}


async def test_opens_after_threshold_consecutive_failures_then_fails_fast():
    clock, service = Clock(), Service()
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout=30, clock=clock)
    service.failing = True

    outcomes = [await breaker.call(service) for _ in range(3)]

    assert [o["circuit_state"] for o in outcomes] == ["closed", "closed", "open"]
    assert outcomes[0] == {
        "success": False,
        "error": "service down",
        "error_type": "ConnectionError",
        "circuit_state": "closed",
    }
    assert breaker.state == "open"

    refused = await breaker.call(service)
    assert service.calls == 3  # not called while open
    assert refused["success"] is False
    assert refused["error_type"] == "CircuitOpenError"
    assert refused["circuit_state"] == "open"
    assert "30.0s" in refused["error"]


async def test_a_success_resets_the_failure_count():
    service = Service()
    breaker = CircuitBreaker(failure_threshold=3, clock=Clock())
    for failing in (True, True, False, True, True):
        service.failing = failing
        await breaker.call(service)
    assert breaker.state == "closed"
    assert breaker.failure_count == 2


async def test_after_reset_timeout_one_trial_runs_and_others_fail_fast():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=10, clock=clock)
    service = Service()
    service.failing = True
    await breaker.call(service)
    assert breaker.state == "open"

    clock.now += 9.9
    assert (await breaker.call(service))["error_type"] == "CircuitOpenError"

    clock.now += 0.1
    release = asyncio.Event()
    trial_calls = 0

    async def trial() -> str:
        nonlocal trial_calls
        trial_calls += 1
        await release.wait()
        return "recovered"

    trial_task = asyncio.create_task(breaker.call(trial))
    await asyncio.sleep(0)
    assert breaker.state == "half_open"
    service.failing = False
    during = await asyncio.gather(*(breaker.call(service) for _ in range(3)))
    assert [d["error_type"] for d in during] == ["CircuitOpenError"] * 3
    assert {d["circuit_state"] for d in during} == {"half_open"}
    assert service.calls == 1  # only the call that opened the circuit reached it

    release.set()
    assert await trial_task == {"success": True, "value": "recovered"}
    assert trial_calls == 1
    assert breaker.state == "closed"


async def test_failed_trial_reopens_for_another_full_timeout():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=5, clock=clock)
    service = Service()
    service.failing = True
    await breaker.call(service)
    await breaker.call(service)

    clock.now += 5
    outcome = await breaker.call(service)
    assert outcome["error_type"] == "ConnectionError"
    assert outcome["circuit_state"] == "open"
    assert service.calls == 3

    clock.now += 4.9
    assert (await breaker.call(service))["error_type"] == "CircuitOpenError"
    clock.now += 0.1
    service.failing = False
    assert (await breaker.call(service))["success"] is True
    assert breaker.state == "closed"


async def test_a_late_success_does_not_close_an_open_circuit():
    # A call admitted while closed finishes only after others have opened the circuit: its
    # success says nothing about the dependency now, so the circuit stays open.
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=60, clock=Clock())
    release = asyncio.Event()

    async def slow_success() -> str:
        await release.wait()
        return "late"

    async def fail() -> None:
        raise ConnectionError("down")

    slow = asyncio.create_task(breaker.call(slow_success))
    await asyncio.sleep(0)
    await breaker.call(fail)
    await breaker.call(fail)
    assert breaker.state == "open"

    release.set()
    assert (await slow)["success"] is True
    assert breaker.state == "open"


async def test_cancelled_trial_leaves_the_circuit_ready_for_another_trial():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=1, clock=clock)
    service = Service()
    service.failing = True
    await breaker.call(service)
    clock.now += 1

    async def hang() -> None:
        await asyncio.Event().wait()

    trial = asyncio.create_task(breaker.call(hang))
    await asyncio.sleep(0)
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    assert breaker.state == "open"

    service.failing = False
    assert (await breaker.call(service))["success"] is True


async def test_success_output_copies_dicts_and_wraps_other_values():
    breaker = CircuitBreaker(clock=Clock())
    original = {"a": 1}

    async def give_dict() -> dict:
        return original

    async def give_list() -> list:
        return [1, 2]

    assert await breaker.call(give_dict) == {"a": 1, "success": True}
    assert original == {"a": 1}  # not mutated
    assert await breaker.call(give_list) == {"success": True, "value": [1, 2]}


async def test_error_without_message_is_named_by_its_class():
    breaker = CircuitBreaker(clock=Clock())

    async def fail() -> None:
        raise TimeoutError()

    assert (await breaker.call(fail))["error"] == "TimeoutError"


def test_state_is_shared_across_separate_event_loops():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=60, clock=clock)
    service = Service()
    service.failing = True

    asyncio.run(breaker.call(service))  # one run...
    asyncio.run(breaker.call(service))  # ...and the next, in its own loop, opens it
    outcome = asyncio.run(breaker.call(service))

    assert outcome["error_type"] == "CircuitOpenError"
    assert service.calls == 2


@pytest.mark.parametrize("threshold,reset", [(0, 1.0), (1.5, 1.0), (1, -1.0)])
def test_invalid_settings_fail_at_construction(threshold, reset):
    with pytest.raises(ValueError):
        CircuitBreaker(threshold, reset)
