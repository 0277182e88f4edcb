"""retry_call and RetryPolicy: attempts, backoff, what retries and what does not."""

from __future__ import annotations

import asyncio

import pytest

from kflow_runtime.patterns import RetryPolicy, retry_call


class Flaky:
    """Fails with the given errors in turn, then returns "ok"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def test_retries_until_success_with_exponential_backoff():
    fn, sleeps, attempts = Flaky(ValueError("a"), ValueError("b")), Sleeps(), []
    policy = RetryPolicy(max_attempts=5, initial_delay=1.0, backoff_factor=2.0, jitter=False)

    assert await retry_call(fn, policy, on_attempt=attempts.append, sleep=sleeps) == "ok"
    assert attempts == [1, 2, 3]
    assert sleeps.delays == [1.0, 2.0]


async def test_backoff_is_capped_at_max_delay():
    fn, sleeps = Flaky(*(OSError() for _ in range(4))), Sleeps()
    policy = RetryPolicy(
        max_attempts=5, initial_delay=1.0, backoff_factor=3.0, max_delay=5.0, jitter=False
    )
    await retry_call(fn, policy, sleep=sleeps)
    assert sleeps.delays == [1.0, 3.0, 5.0, 5.0]


def test_equal_jitter_keeps_at_least_half_the_backoff():
    policy = RetryPolicy(initial_delay=2.0, backoff_factor=2.0, max_delay=60.0, jitter=True)
    assert policy.delay(3, rand=lambda: 0.0) == 4.0  # half of 8
    assert policy.delay(3, rand=lambda: 1.0) == 8.0
    assert all(4.0 <= policy.delay(3) <= 8.0 for _ in range(200))
    assert RetryPolicy(max_delay=10.0, jitter=True).delay(10_000, rand=lambda: 1.0) == 10.0


async def test_after_the_last_attempt_the_last_error_propagates_unchanged():
    last = ValueError("third")
    fn, sleeps, attempts = Flaky(ValueError("1"), ValueError("2"), last), Sleeps(), []

    with pytest.raises(ValueError) as caught:
        await retry_call(fn, RetryPolicy(max_attempts=3), on_attempt=attempts.append, sleep=sleeps)

    assert caught.value is last
    assert attempts == [1, 2, 3]
    assert len(sleeps.delays) == 2  # no pause after the last attempt


async def test_only_retry_on_errors_are_retried():
    fn, sleeps = Flaky(KeyError("not retryable")), Sleeps()
    policy = RetryPolicy(max_attempts=5, retry_on=(ConnectionError, TimeoutError))

    with pytest.raises(KeyError):
        await retry_call(fn, policy, sleep=sleeps)
    assert fn.calls == 1
    assert sleeps.delays == []

    fn = Flaky(ConnectionResetError(), TimeoutError())  # subclasses count
    assert await retry_call(fn, policy, sleep=Sleeps()) == "ok"


async def test_cancellation_is_never_retried():
    fn, sleeps = Flaky(asyncio.CancelledError()), Sleeps()
    with pytest.raises(asyncio.CancelledError):
        await retry_call(fn, RetryPolicy(retry_on=(BaseException,)), sleep=sleeps)
    assert fn.calls == 1


async def test_default_sleep_is_asyncio_sleep():
    fn = Flaky(ValueError())
    assert await retry_call(fn, RetryPolicy(initial_delay=0.0)) == "ok"
    assert fn.calls == 2


def test_policy_is_validated_and_normalised_when_built():
    assert RetryPolicy(retry_on=[ValueError]).retry_exceptions == (ValueError,)
    assert RetryPolicy(retry_exceptions=KeyError).retry_exceptions == (KeyError,)
    for bad in ({"max_attempts": 0}, {"initial_delay": -1}, {"backoff_factor": 0.5},
                {"max_delay": float("inf")}, {"initial_delay": float("nan")}, {"jitter": 1}):
        with pytest.raises(ValueError):
            RetryPolicy(**bad)
    with pytest.raises(TypeError):
        RetryPolicy(retry_on=("not a name",))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="did you mean 'max_attempts'"):
        RetryPolicy(max_attempt=3)  # type: ignore[call-arg]
    with pytest.raises(AttributeError):
        RetryPolicy().max_attempts = 9  # type: ignore[misc]


def test_delays_are_what_the_reader_computes_unless_jitter_is_asked_for():
    policy = RetryPolicy(initial_delay=1.0, backoff_factor=2.0)
    assert [policy.delay(n) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert policy.jitter is False


async def test_dotted_names_are_resolved_when_the_policy_is_used():
    policy = RetryPolicy(max_attempts=3, retry_exceptions=("ConnectionError", "asyncio.TimeoutError"))
    fn = Flaky(ConnectionResetError(), TimeoutError())
    assert await retry_call(fn, policy, sleep=Sleeps()) == "ok"
    assert policy.named() is policy
    assert RetryPolicy(retry_exceptions=[KeyError]).named().retry_exceptions == ("KeyError",)


def test_kailash_spelling_maps_onto_the_same_policy():
    kailash = RetryPolicy(max_retries=2, base_delay=0.5, max_delay=9.0, retry_on=[KeyError])
    assert kailash == RetryPolicy(max_attempts=3, initial_delay=0.5, max_delay=9.0,
                                  retry_exceptions=(KeyError,))
    assert RetryPolicy(strategy="immediate").initial_delay == 0.0
    with pytest.raises(ValueError, match="strategy 'linear' is not supported"):
        RetryPolicy(strategy="linear")
    with pytest.raises(ValueError, match="not both"):
        RetryPolicy(max_attempts=2, max_retries=2)
