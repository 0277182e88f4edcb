"""SharedRateLimiter and SharedCircuitBreaker: one state in Redis for several OS processes.

Uses the real Redis of the test setup (`redis_url`, `redis_client`, `unique_name` from
tests/services.py): unreachable, the tests are skipped, or fail under KFLOW_REQUIRE_SERVICES=1.
Every key is under the test's own prefix and deleted afterwards.

Other processes run WORKER (below) with `python -c`. They start together on a barrier of Redis
lists, not on a timer, and a trial call holds until the test releases it, so nothing depends
on how fast processes start. No test passes or fails on timing: calls and outcomes are
counted, and the rate bound is checked on recorded start times, as in test_rate_limit.py.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import kflow_runtime
from kflow_runtime.patterns import (
    CircuitBreaker,
    RateLimiter,
    SharedCircuitBreaker,
    SharedRateLimiter,
)

pytestmark = pytest.mark.services

REPO = Path(kflow_runtime.__file__).resolve().parents[1]

# A start is recorded once the grant's reply has reached the process and its task has run,
# which under load (2 vCPUs, several processes) can lag the grant by tens of milliseconds. The
# bound is checked with this much extra window: with 10 requests a second, one more start.
SKEW = 0.1

WORKER = r"""
import asyncio, json, os, sys, time

import redis.asyncio as aioredis

from kflow_runtime.patterns import SharedCircuitBreaker, SharedRateLimiter


async def barrier(client, cfg):
    if cfg.get("ready"):
        await client.rpush(cfg["ready"], os.getpid())
        await client.blpop([cfg["go"]], timeout=60)


async def rate(client, cfg):
    limiter = SharedRateLimiter(cfg["key"], cfg["rps"], cfg["burst"])
    await barrier(client, cfg)
    deadline = time.monotonic() + cfg["duration"]
    starts = []

    async def worker():
        while time.monotonic() < deadline:
            await limiter.acquire(client)
            starts.append(time.time())

    await asyncio.gather(*(worker() for _ in range(cfg["tasks"])))
    return {"starts": starts}


async def breaker(client, cfg):
    breaker = SharedCircuitBreaker(
        cfg["key"], cfg["threshold"], cfg["reset"], trial_lease=cfg.get("lease", 10.0)
    )
    calls = 0

    async def fn():
        nonlocal calls
        calls += 1
        if cfg["fn"] == "fail":
            raise ConnectionError("service down")
        if cfg["fn"] in ("hold", "crash"):
            await client.rpush(cfg["ran"], os.getpid())
            if cfg["fn"] == "crash":
                os._exit(3)  # dies mid-trial: no outcome, no lease renewals
            await client.blpop([cfg["release"]], timeout=60)
        return {"pid": os.getpid()}

    async def caller():
        outcomes = []
        for _ in range(cfg.get("rounds", 1)):
            outcomes.append(await breaker.call(client, fn))
            if cfg.get("done"):
                await client.rpush(cfg["done"], os.getpid())
        return outcomes

    await barrier(client, cfg)
    runs = await asyncio.gather(*(caller() for _ in range(cfg.get("tasks", 1))))
    return {"calls": calls, "outcomes": [o for run in runs for o in run]}


async def main(cfg):
    client = aioredis.Redis.from_url(cfg["redis_url"], decode_responses=True)
    try:
        result = await {"rate": rate, "breaker": breaker}[cfg["mode"]](client, cfg)
    finally:
        await client.aclose()
    print(json.dumps(result))


asyncio.run(main(json.loads(sys.argv[1])))
"""


class Worker:
    """One OS process running WORKER with `cfg`."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, redis_url: str, **cfg: Any) -> Worker:
        path = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            json.dumps({"redis_url": redis_url, **cfg}),
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        return cls(proc)

    async def result(self, returncode: int = 0) -> Any:
        async with asyncio.timeout(60):  # only turns a hang into a failure
            out, err = await self.proc.communicate()
        assert self.proc.returncode == returncode, err.decode()
        return json.loads(out) if returncode == 0 else None

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


@pytest.fixture
async def workers(redis_url):
    """`await workers(**cfg)` starts a worker process; any left running are killed after."""
    started: list[Worker] = []

    async def start(**cfg: Any) -> Worker:
        started.append(await Worker.start(redis_url, **cfg))
        return started[-1]

    yield start
    for worker in started:
        worker.kill()
        await worker.proc.wait()


@pytest.fixture
async def keys(redis_client, unique_name):
    """`keys("name")` is a key under this test's prefix; all such keys are deleted after."""
    yield lambda name: f"{unique_name}:{name}"
    found = [k async for k in redis_client.scan_iter(match=f"{unique_name}:*")]
    if found:
        await redis_client.delete(*found)


async def until(predicate: Callable[[], Any], what: str) -> None:
    """Poll until `predicate()` (or what it returns, awaited) is true; the timeout only turns
    a hang into a failure."""

    async def holds() -> bool:
        value = predicate()
        return bool(await value if inspect.isawaitable(value) else value)

    try:
        async with asyncio.timeout(30):
            while not await holds():
                await asyncio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


async def open_barrier(client, ready: str, go: str, count: int) -> None:
    """Wait until `count` workers wait on the barrier, then let them all go."""

    async def all_ready() -> bool:
        return await client.llen(ready) >= count

    await until(all_ready, f"{count} workers to be ready")
    await client.rpush(go, *range(count))


def assert_token_bucket_bound(times: list[float], rps: float, burst: int, skew: float) -> None:
    """No window [t_i, t_j] holds more than burst + rps * (t_j - t_i + skew) starts."""
    times = sorted(times)
    for i, j in itertools.combinations(range(len(times)), 2):
        allowed = burst + rps * (times[j] - times[i] + skew) + 1e-9
        assert (
            j - i + 1 <= allowed
        ), f"{j - i + 1} starts in [{times[i]:.3f}, {times[j]:.3f}], allowed {allowed:.3f}"


class Service:
    """A dependency whose answers the test scripts; counts the calls that reach it."""

    def __init__(self, failing: bool = False) -> None:
        self.calls = 0
        self.failing = failing

    async def __call__(self) -> dict:
        self.calls += 1
        if self.failing:
            raise ConnectionError("service down")
        return {"data": self.calls}


# ------------------------------------------------------------------------- rate limiter


async def test_three_processes_together_keep_one_rate(redis_client, redis_url, keys, workers):
    rps, burst, processes = 10, 4, 3
    cfg = dict(mode="rate", key=keys("bucket"), rps=rps, burst=burst, duration=2.0, tasks=3)
    barrier = dict(ready=keys("ready"), go=keys("go"))
    started = [await workers(**cfg, **barrier) for _ in range(processes)]
    await open_barrier(redis_client, barrier["ready"], barrier["go"], processes)

    per_process = [(await w.result())["starts"] for w in started]

    times = [t for starts in per_process for t in starts]
    assert all(per_process), "every process got to start requests"
    # More than the burst: the bucket refilled and let the processes go on, one at a time.
    assert len(times) > burst
    # Every window that starts and ends on a recorded start, so every length T from 0 to the
    # whole run. Three buckets, one per process, would let about three times as many through.
    assert_token_bucket_bound(times, rps, burst, SKEW)


async def test_many_tasks_in_one_process_keep_the_rate(redis_client, keys):
    rps, burst = 20, 4
    limiter = SharedRateLimiter(keys("bucket"), rps, burst)
    times: list[float] = []

    async def one() -> None:
        await limiter.acquire(redis_client)
        times.append(time.monotonic())

    await asyncio.gather(*(one() for _ in range(30)))

    assert len(times) == 30
    assert_token_bucket_bound(times, rps, burst, SKEW)


async def test_the_burst_goes_at_once_then_callers_wait(redis_client, keys):
    # One a second: the first three acquisitions surely happen within that second.
    sleeps: list[float] = []

    async def sleep(delay: float) -> None:
        sleeps.append(delay)
        await asyncio.sleep(delay)

    limiter = SharedRateLimiter(keys("bucket"), 1, burst_size=3, sleep=sleep)
    for _ in range(3):
        await limiter.acquire(redis_client)
    assert sleeps == []

    await limiter.acquire(redis_client)
    assert len(sleeps) >= 1 and 0 < sleeps[0] <= 1.0


async def test_the_bucket_expires_once_full_again(redis_client, keys):
    key = keys("bucket")
    await SharedRateLimiter(key, 2, burst_size=3).acquire(redis_client)

    # Full again one interval (0.5 s) after one start; plus a second's margin.
    assert 0 < await redis_client.pttl(key) <= 1500
    assert set(await redis_client.hgetall(key)) == {"reserved", "granted"}


async def test_cancelled_waiter_gives_its_slot_back(redis_client, keys):
    key = keys("bucket")
    sleeping = asyncio.Event()

    async def sleep(delay: float) -> None:
        sleeping.set()
        await asyncio.sleep(delay)

    limiter = SharedRateLimiter(key, 1, burst_size=1, sleep=sleep)
    await limiter.acquire(redis_client)  # the burst
    reserved = await redis_client.hget(key, "reserved")

    waiter = asyncio.create_task(limiter.acquire(redis_client))  # reserves one second on
    await sleeping.wait()
    assert await redis_client.hget(key, "reserved") != reserved
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)

    assert await redis_client.hget(key, "reserved") == reserved


@pytest.mark.parametrize(
    "key,rps,burst", [("", 1, None), (None, 1, None), ("k", 0, None), ("k", 1, 0), ("k", 1, 1.5)]
)
def test_rate_limiter_settings_are_checked_as_in_process(key: Any, rps: float, burst: Any):
    with pytest.raises(ValueError):
        SharedRateLimiter(key, rps, burst)


def test_default_burst_is_the_in_process_one():
    for rps in (5, 2.7, 0.5):
        assert SharedRateLimiter("k", rps).burst_size == RateLimiter(rps).burst_size


# ---------------------------------------------------------------------- circuit breaker


async def test_failures_in_one_process_open_the_breaker_for_another(redis_client, keys, workers):
    cfg = dict(mode="breaker", key=keys("breaker"), threshold=3, reset=60.0)

    a = await (await workers(**cfg, fn="fail", rounds=3)).result()
    assert a["calls"] == 3
    assert [o["circuit_state"] for o in a["outcomes"]] == ["closed", "closed", "open"]
    assert a["outcomes"][0] == {
        "success": False,
        "error": "service down",
        "error_type": "ConnectionError",
        "circuit_state": "closed",
    }

    b = await (await workers(**cfg, fn="succeed")).result()
    assert b["calls"] == 0  # failed fast: its fn never ran
    [refused] = b["outcomes"]
    assert refused["success"] is False
    assert refused["error_type"] == "CircuitOpenError"
    assert refused["circuit_state"] == "open"
    assert refused["error"].startswith("circuit open after 3 consecutive failures; next trial in")

    assert await SharedCircuitBreaker(cfg["key"], 3, 60.0).state(redis_client) == "open"


async def test_one_trial_across_processes_and_its_success_closes_for_all(
    redis_client, keys, workers
):
    reset, processes, tasks = 0.3, 3, 4
    key = keys("breaker")
    here = SharedCircuitBreaker(key, failure_threshold=2, reset_timeout=reset)
    down = Service(failing=True)
    await here.call(redis_client, down)
    await here.call(redis_client, down)
    assert await here.state(redis_client) == "open"

    lists = {name: keys(name) for name in ("ready", "go", "ran", "release", "done")}
    cfg = dict(mode="breaker", key=key, threshold=2, reset=reset, fn="hold", tasks=tasks)
    contenders = [await workers(**cfg, **lists) for _ in range(processes)]
    await asyncio.sleep(reset + 0.1)  # the reset timeout has surely passed (it is not checked)
    await open_barrier(redis_client, lists["ready"], lists["go"], processes)

    callers = processes * tasks

    async def all_settled() -> bool:
        # Every caller either failed fast (done) or holds in its fn (ran).
        settled = [await redis_client.llen(lists[name]) for name in ("ran", "done")]
        return sum(settled) >= callers

    await until(all_settled, "every caller to fail fast or run")
    ran = await redis_client.llen(lists["ran"])
    assert await here.state(redis_client) == "half_open"
    await redis_client.rpush(lists["release"], *range(ran))
    results = [await c.result() for c in contenders]

    assert ran == 1
    assert sum(r["calls"] for r in results) == 1
    outcomes = [o for r in results for o in r["outcomes"]]
    successes = [o for o in outcomes if o["success"]]
    assert len(successes) == 1 and set(successes[0]) == {"pid", "success"}
    refused = [o for o in outcomes if not o["success"]]
    assert len(refused) == callers - 1
    assert {o["error_type"] for o in refused} == {"CircuitOpenError"}
    assert {o["circuit_state"] for o in refused} == {"half_open"}

    # Closed for everyone: this process and a fresh one run their calls.
    assert await here.state(redis_client) == "closed"
    assert await redis_client.exists(key) == 0  # closed without failures is no key at all
    after = await (await workers(**{**cfg, "fn": "succeed", "tasks": 1})).result()
    assert after["calls"] == 1 and after["outcomes"][0]["success"] is True
    up = Service()
    assert (await here.call(redis_client, up)) == {"data": 1, "success": True}


async def test_a_trial_whose_process_dies_is_retried_after_its_lease(redis_client, keys, workers):
    key, lease = keys("breaker"), 0.5
    here = SharedCircuitBreaker(key, failure_threshold=1, reset_timeout=0)
    await here.call(redis_client, Service(failing=True))

    cfg = dict(mode="breaker", key=key, threshold=1, reset=0, lease=lease, fn="crash")
    await (await workers(**cfg, ran=keys("ran"))).result(returncode=3)
    assert await redis_client.llen(keys("ran")) == 1  # it was the trial, then died

    await asyncio.sleep(lease + 0.1)  # the lease has surely lapsed (it is not checked)
    assert await here.state(redis_client) == "open"
    service = Service()
    assert (await here.call(redis_client, service))["success"] is True
    assert service.calls == 1
    assert await here.state(redis_client) == "closed"


async def test_many_tasks_in_one_process_one_trial(redis_client, keys):
    breaker = SharedCircuitBreaker(keys("breaker"), failure_threshold=1, reset_timeout=0)
    await breaker.call(redis_client, Service(failing=True))

    release, entered = asyncio.Event(), asyncio.Event()
    service = Service()

    async def trial() -> str:
        service.calls += 1
        entered.set()
        await release.wait()
        return "recovered"

    calls = [asyncio.create_task(breaker.call(redis_client, trial)) for _ in range(20)]
    await entered.wait()
    # All but the trial finish while it holds: wait for them, then release the trial.
    await until(lambda: sum(c.done() for c in calls) == 19, "19 callers to fail fast")
    refused = [c.result() for c in calls if c.done()]
    release.set()
    outcomes = await asyncio.gather(*calls)

    assert service.calls == 1
    assert {o["error_type"] for o in refused} == {"CircuitOpenError"}
    assert {o["circuit_state"] for o in refused} == {"half_open"}
    assert [o for o in outcomes if o["success"]] == [{"success": True, "value": "recovered"}]
    assert await breaker.state(redis_client) == "closed"


async def test_failed_trial_reopens(redis_client, keys):
    key = keys("breaker")
    breaker = SharedCircuitBreaker(key, failure_threshold=2, reset_timeout=0)
    service = Service(failing=True)
    await breaker.call(redis_client, service)
    await breaker.call(redis_client, service)
    opened_at = int(await redis_client.hget(key, "opened_at"))

    outcome = await breaker.call(redis_client, service)  # due at once: the trial

    assert service.calls == 3
    assert outcome["error_type"] == "ConnectionError"
    assert outcome["circuit_state"] == "open"
    assert await breaker.state(redis_client) == "open"
    assert int(await redis_client.hget(key, "opened_at")) > opened_at  # a full timeout again
    assert await redis_client.hget(key, "failures") == "3"


async def test_open_breaker_fails_fast_until_reset_timeout(redis_client, keys):
    breaker = SharedCircuitBreaker(keys("breaker"), failure_threshold=2, reset_timeout=60)
    service = Service(failing=True)
    await breaker.call(redis_client, service)
    await breaker.call(redis_client, service)

    refused = await asyncio.gather(*(breaker.call(redis_client, service) for _ in range(10)))

    assert service.calls == 2
    assert {r["circuit_state"] for r in refused} == {"open"}
    assert {r["error_type"] for r in refused} == {"CircuitOpenError"}


async def test_a_success_resets_the_count_and_closed_breakers_leave_no_key(redis_client, keys):
    key = keys("breaker")
    breaker = SharedCircuitBreaker(key, failure_threshold=3)
    service = Service()
    for failing in (True, True, False, True, True):
        service.failing = failing
        await breaker.call(redis_client, service)
    assert await breaker.state(redis_client) == "closed"
    assert await redis_client.hget(key, "failures") == "2"
    assert await redis_client.pttl(key) > 0  # forgotten after a day without calls

    service.failing = False
    await breaker.call(redis_client, service)
    assert await redis_client.exists(key) == 0


async def test_late_success_does_not_close_an_open_circuit(redis_client, keys):
    breaker = SharedCircuitBreaker(keys("breaker"), failure_threshold=2, reset_timeout=60)
    admitted, release = asyncio.Event(), asyncio.Event()

    async def slow_success() -> str:
        admitted.set()
        await release.wait()
        return "late"

    slow = asyncio.create_task(breaker.call(redis_client, slow_success))
    await admitted.wait()  # admitted while closed
    down = Service(failing=True)
    await breaker.call(redis_client, down)
    await breaker.call(redis_client, down)
    assert await breaker.state(redis_client) == "open"

    release.set()
    assert (await slow)["success"] is True
    assert await breaker.state(redis_client) == "open"


async def test_cancelled_trial_leaves_the_circuit_ready_for_another_trial(redis_client, keys):
    breaker = SharedCircuitBreaker(keys("breaker"), failure_threshold=1, reset_timeout=0)
    await breaker.call(redis_client, Service(failing=True))
    entered = asyncio.Event()

    async def hang() -> None:
        entered.set()
        await asyncio.Event().wait()

    trial = asyncio.create_task(breaker.call(redis_client, hang))
    await entered.wait()
    assert await breaker.state(redis_client) == "half_open"
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    assert await breaker.state(redis_client) == "open"

    service = Service()
    assert (await breaker.call(redis_client, service))["success"] is True
    assert service.calls == 1


async def test_a_long_trial_keeps_its_lease(redis_client, keys):
    key = keys("breaker")
    breaker = SharedCircuitBreaker(key, failure_threshold=1, reset_timeout=0, trial_lease=0.6)
    await breaker.call(redis_client, Service(failing=True))
    entered, release = asyncio.Event(), asyncio.Event()

    async def long_trial() -> str:
        entered.set()
        await release.wait()
        return "done"

    trial = asyncio.create_task(breaker.call(redis_client, long_trial))
    await entered.wait()
    leases = {await redis_client.hget(key, "lease_until")}

    async def renewed_four_times() -> bool:
        leases.add(await redis_client.hget(key, "lease_until"))
        return len(leases) >= 5

    # Renewed every 0.2 s: four renewals take it past the first lease's end.
    await until(renewed_four_times, "four lease renewals")
    others = Service()
    refused = await asyncio.gather(*(breaker.call(redis_client, others) for _ in range(5)))
    assert others.calls == 0
    assert {r["circuit_state"] for r in refused} == {"half_open"}

    release.set()
    assert await trial == {"success": True, "value": "done"}
    assert await breaker.state(redis_client) == "closed"


async def test_output_is_the_in_process_breakers(redis_client, keys):
    shared = SharedCircuitBreaker(keys("breaker"))
    local = CircuitBreaker()
    original = {"a": 1}

    async def give_dict() -> dict:
        return original

    async def give_list() -> list:
        return [1, 2]

    async def fail() -> None:
        raise TimeoutError()

    for fn in (give_dict, give_list, fail):
        assert await shared.call(redis_client, fn) == await local.call(fn)
    assert original == {"a": 1}
    assert (await shared.call(redis_client, fail))["error"] == "TimeoutError"


async def test_bytes_replies_work_too(redis_url, keys):
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)  # without decode_responses
    try:
        breaker = SharedCircuitBreaker(keys("breaker"), failure_threshold=1, reset_timeout=60)
        await breaker.call(client, Service(failing=True))
        assert await breaker.state(client) == "open"
        assert (await breaker.call(client, Service()))["circuit_state"] == "open"
        await SharedRateLimiter(keys("bucket"), 100).acquire(client)
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    "key,threshold,reset,lease",
    [
        ("", 1, 1.0, 1.0),
        ("k", 0, 1.0, 1.0),
        ("k", 1.5, 1.0, 1.0),
        ("k", 1, -1.0, 1.0),
        ("k", 1, 1.0, 0),
    ],
)
def test_breaker_settings_are_checked(key: str, threshold: Any, reset: float, lease: float):
    with pytest.raises(ValueError):
        SharedCircuitBreaker(key, threshold, reset, trial_lease=lease)


# ----------------------------------------------------------- in-process ones unchanged


async def test_in_process_state_stays_in_the_process(redis_client, keys):
    # Same settings, one in Redis, one not: opening the in-process breaker and draining the
    # in-process limiter touch nothing in Redis, and the shared ones do not see them.
    local = CircuitBreaker(failure_threshold=1, reset_timeout=60)
    await local.call(Service(failing=True))
    assert local.state == "open"
    shared = SharedCircuitBreaker(keys("breaker"), failure_threshold=1, reset_timeout=60)
    assert await shared.state(redis_client) == "closed"

    limiter = RateLimiter(1, burst_size=1)
    await limiter.acquire()
    sleeps: list[float] = []

    async def sleep(delay: float) -> None:
        sleeps.append(delay)

    await SharedRateLimiter(keys("bucket"), 1, burst_size=1, sleep=sleep).acquire(redis_client)
    assert sleeps == []
    assert [k async for k in redis_client.scan_iter(match=keys("*"))] == [keys("bucket")]


def test_importing_the_patterns_does_not_import_redis():
    code = "import sys, kflow_runtime.patterns; print('redis' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
