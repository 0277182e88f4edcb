"""Rate limiter and circuit breaker whose state lives in Redis, shared by every process.

`rate_limited(..., shared="cache")` and `circuit_breaker(..., shared="cache")` compile to these
instead of `RateLimiter` / `CircuitBreaker`: every process or machine running the module reads
and updates one bucket, or one breaker, kept under a Redis key. Each read-and-update is one Lua
script, so Redis runs it atomically, and time is the Redis server's (`TIME` inside the
script), never a process's own clock, so machines whose clocks disagree still agree on the
state. The client (a `redis.asyncio.Redis`) is passed to each call; redis itself is never
imported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
from collections.abc import Awaitable, Callable
from typing import Any

from kflow_runtime.run import is_cancellation

from ..observe import emit
from ._errors import error_message
from .circuit_breaker import HALF_OPEN, OPEN, CircuitBreaker, CircuitOpenError, _failure
from .rate_limit import RateLimiter

# Every script starts with this. Times are integer microseconds of the server's clock; Lua
# numbers are doubles, exact up to 2**53, but Lua's tostring keeps only 14 digits, so values
# are written with num().
_PRELUDE = """
if redis.replicate_commands then redis.replicate_commands() end -- Redis < 5: TIME, then writes
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function num(x) return string.format('%.0f', x) end
"""

# ------------------------------------------------------------------------- rate limiter

# KEYS[1], a hash of two theoretical arrival times (GCRA, as in RateLimiter): `reserved` hands
# out start times in arrival order, `granted` is checked as a caller actually starts.
# ARGV: interval_us, tolerance_us, phase ("reserve" the first time, then "grant").
# Returns {wait_us, slot}: wait_us 0 means start now, else sleep that long and call again with
# "grant". slot is nonzero when a later start time was reserved; a caller cancelled while it
# waits gives that slot back with _RELEASE.
_LIMIT = _PRELUDE + """
local key = KEYS[1]
local interval, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = now_us()
local f = redis.call('HMGET', key, 'reserved', 'granted')
local reserved, granted = tonumber(f[1]) or 0, tonumber(f[2]) or 0
local result
if ARGV[3] == 'reserve' then
  local tat = math.max(reserved, now)
  reserved = tat + interval
  redis.call('HSET', key, 'reserved', num(reserved))
  if tat - tolerance > now then result = {tat - tolerance - now, reserved} end
end
if not result then
  local tat = math.max(granted, now)
  if tat - tolerance > now then
    result = {tat - tolerance - now, 0}
  else
    granted = tat + interval
    redis.call('HSET', key, 'granted', num(granted))
    result = {0, 0}
  end
end
-- Once both times have passed the bucket is full, the same as no key: let the key go then.
redis.call('PEXPIRE', key, math.floor((math.max(reserved, granted) - now) / 1000) + 1000)
return result
"""

# ARGV: slot, interval_us. Gives the slot back if nobody reserved after it.
_RELEASE = _PRELUDE + """
local slot = tonumber(ARGV[1])
if tonumber(redis.call('HGET', KEYS[1], 'reserved')) ~= slot then return 0 end
redis.call('HSET', KEYS[1], 'reserved', num(slot - tonumber(ARGV[2])))
return 1
"""


class SharedRateLimiter:
    """`RateLimiter`'s bound across processes: at most `burst_size + requests_per_second * T`
    acquisitions, by all processes together, complete in any T seconds (of Redis time).

    Same two steps as `RateLimiter`: reserve a start time in arrival order, sleep until then,
    and check again against the starts actually granted before going. Each step is one
    script run. The bucket is a hash under `key`; it expires once it is full again.
    """

    def __init__(
        self,
        key: str,
        requests_per_second: float,
        burst_size: int | None = None,
        *,
        sleep: Callable[[float], Awaitable[object]] | None = None,
    ) -> None:
        _check_key(key)
        # Validated, and the burst defaulted, exactly as the in-process limiter does.
        settings = RateLimiter(requests_per_second, burst_size)
        self.key = key
        self.requests_per_second = settings.requests_per_second
        self.burst_size = settings.burst_size
        self._sleep = sleep or asyncio.sleep
        # Whole microseconds, rounded so the rate is never exceeded.
        self._interval_us = math.ceil(1_000_000 / requests_per_second)
        self._tolerance_us = (self.burst_size - 1) * self._interval_us

    async def acquire(self, client: Any) -> None:
        """Wait until a request may start; return as it starts."""
        wait, slot = await self._limit(client, "reserve")
        if slot:
            emit("kflow.rate_limit.wait", {"kflow.rate_limit.wait_s": wait / 1e6,
                                           "kflow.rate_limit.rps": self.requests_per_second,
                                           "kflow.rate_limit.key": self.key})
            try:
                await self._sleep(wait / 1e6)
            except BaseException:
                with contextlib.suppress(Exception):
                    await _run(client, _RELEASE, self.key, slot, self._interval_us)
                raise
            wait, _ = await self._limit(client, "grant")
        while wait > 0:
            await self._sleep(wait / 1e6)
            wait, _ = await self._limit(client, "grant")

    async def _limit(self, client: Any, phase: str) -> tuple[int, int]:
        wait, slot = await _run(
            client, _LIMIT, self.key, self._interval_us, self._tolerance_us, phase
        )
        return int(wait), int(slot)

    def __repr__(self) -> str:
        return (
            f"SharedRateLimiter({self.key!r}, requests_per_second={self.requests_per_second!r}, "
            f"burst_size={self.burst_size!r})"
        )


# ---------------------------------------------------------------------- circuit breaker

# KEYS[1], a hash: state ("open" / "half_open"; no key means closed with no failures),
# failures (consecutive), opened_at (us), trial (the trial call's token), lease_until (us).
# Half-open lasts while the trial's caller renews its lease; if it stops (its process died),
# the circuit counts as open and due, like after a cancelled trial.

# ARGV: reset_us, lease_us, token, idle_ms. Returns {verdict, state, failures, wait_us}:
# verdict "run" (closed), "trial" (this call is the trial) or "refuse".
_ADMIT = _PRELUDE + """
local key = KEYS[1]
local now = now_us()
local f = redis.call('HMGET', key, 'state', 'failures', 'opened_at', 'lease_until')
local state, failures = f[1] or 'closed', tonumber(f[2]) or 0
if state == 'closed' then return {'run', state, failures, 0} end
if state == 'half_open' and now < tonumber(f[4]) then return {'refuse', state, failures, 0} end
local due = tonumber(f[3]) + tonumber(ARGV[1])
if state == 'open' and now < due then return {'refuse', state, failures, due - now} end
redis.call('HSET', key, 'state', 'half_open', 'trial', ARGV[3],
           'lease_until', num(now + tonumber(ARGV[2])))
redis.call('PEXPIRE', key, ARGV[4])
return {'trial', 'half_open', failures, 0}
"""

# ARGV: "1" (success) or "0" (failure), token ("" unless the call was admitted as the trial),
# failure_threshold, idle_ms. Returns the state after this outcome.
_REPORT = _PRELUDE + """
local key = KEYS[1]
local f = redis.call('HMGET', key, 'state', 'failures', 'trial')
local state, failures = f[1] or 'closed', tonumber(f[2]) or 0
local trial = state == 'half_open' and f[3] == ARGV[2]
if not (trial or state == 'closed') then
  return state -- admitted before the circuit opened: says nothing about the service now
end
if ARGV[1] == '1' then
  redis.call('DEL', key)
  return 'closed'
end
failures = failures + 1
if trial or failures >= tonumber(ARGV[3]) then
  state = 'open'
  redis.call('HSET', key, 'state', state, 'failures', failures, 'opened_at', num(now_us()))
  redis.call('HDEL', key, 'trial', 'lease_until')
else
  redis.call('HSET', key, 'failures', failures)
end
redis.call('PEXPIRE', key, ARGV[4])
return state
"""

# ARGV: token. A cancelled trial: open, and due at once.
_ABANDON = _PRELUDE + """
local f = redis.call('HMGET', KEYS[1], 'state', 'trial')
if f[1] ~= 'half_open' or f[2] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'open')
redis.call('HDEL', KEYS[1], 'trial', 'lease_until')
return 1
"""

# ARGV: token, lease_us. Returns 1 while the trial is still this token's, else 0.
_RENEW = _PRELUDE + """
local f = redis.call('HMGET', KEYS[1], 'state', 'trial')
if f[1] ~= 'half_open' or f[2] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'lease_until', num(now_us() + tonumber(ARGV[2])))
return 1
"""

_STATE = _PRELUDE + """
local f = redis.call('HMGET', KEYS[1], 'state', 'lease_until')
if f[1] == 'half_open' and now_us() >= tonumber(f[2]) then return 'open' end
return f[1] or 'closed'
"""

# A breaker nobody has called for a day (past its reset_timeout) is forgotten: closed again.
IDLE_EXPIRY = 86_400.0


class SharedCircuitBreaker:
    """`CircuitBreaker`'s state machine and output, with one state for every process.

    closed -> open after `failure_threshold` consecutive failures, counted across processes;
    open refuses calls everywhere; after `reset_timeout` exactly one call, in one process,
    runs as the trial while every other caller fails fast; its success closes the circuit for
    all, its failure opens it again. The trial's caller renews a lease of `trial_lease`
    seconds every third of it; if its process dies mid-trial, the next call after the lease
    lapses becomes the trial.
    """

    def __init__(
        self,
        key: str,
        failure_threshold: int = 5,
        reset_timeout: float = 60.0,
        *,
        trial_lease: float = 10.0,
    ) -> None:
        _check_key(key)
        CircuitBreaker(failure_threshold, reset_timeout)  # validated as the in-process one
        if not trial_lease > 0:
            raise ValueError(f"trial_lease must be > 0 seconds, got {trial_lease!r}")
        self.key = key
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.trial_lease = trial_lease
        self._reset_us = round(reset_timeout * 1e6)
        self._lease_us = round(trial_lease * 1e6)
        self._idle_ms = round((reset_timeout + IDLE_EXPIRY) * 1000)

    async def state(self, client: Any) -> str:
        """The state: "closed", "open" or "half_open" (a trial call is running somewhere)."""
        return _text(await _run(client, _STATE, self.key))

    async def call(self, client: Any, fn: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
        """Run `fn()` unless the circuit refuses it; the output of `CircuitBreaker.call`.

        Errors of Redis itself propagate: without its state the breaker cannot decide.
        """
        token = os.urandom(12).hex()
        verdict, state, failures, wait = await _run(
            client, _ADMIT, self.key, self._reset_us, self._lease_us, token, self._idle_ms
        )
        verdict, state = _text(verdict), _text(state)
        if verdict == "refuse":
            return _failure(_refusal(state, failures, wait), CircuitOpenError.__name__, state)
        if verdict != "trial":
            return await self._run_and_report(client, fn, "", state)
        self._changed(OPEN, HALF_OPEN)
        renewing = asyncio.create_task(self._renew(client, token))
        try:
            return await self._run_and_report(client, fn, token, HALF_OPEN)
        except BaseException:
            # Cancelled mid-trial, or its outcome could not be recorded: nothing was learnt,
            # so the next caller may try at once.
            with contextlib.suppress(Exception):
                await _run(client, _ABANDON, self.key, token)
            raise
        finally:
            renewing.cancel()
            await asyncio.wait([renewing])

    async def _run_and_report(
        self, client: Any, fn: Callable[[], Awaitable[Any]], token: str, before: str
    ) -> dict[str, Any]:
        try:
            value = await fn()
        except BaseException as exc:
            if is_cancellation(exc):
                raise
            # SystemExit or a CancelledError the code raised itself: a failure like any other.
            state = await self._report(client, "0", token)
            self._changed(before, state)
            return _failure(error_message(exc), type(exc).__name__, state)
        self._changed(before, await self._report(client, "1", token))
        if isinstance(value, dict):
            return {**value, "success": True}
        return {"success": True, "value": value}

    def _changed(self, before: str, after: str) -> None:
        if after != before:
            emit("kflow.breaker.state_change", {"kflow.breaker.from": before,
                                                "kflow.breaker.to": after,
                                                "kflow.breaker.key": self.key})

    async def _report(self, client: Any, ok: str, token: str) -> str:
        args = (ok, token, self.failure_threshold, self._idle_ms)
        return _text(await _run(client, _REPORT, self.key, *args))

    async def _renew(self, client: Any, token: str) -> None:
        while True:
            await asyncio.sleep(self.trial_lease / 3)
            try:
                if not await _run(client, _RENEW, self.key, token, self._lease_us):
                    return
            except Exception:
                continue  # try again; if Redis stays away, the lease lapses

    def __repr__(self) -> str:
        return (
            f"SharedCircuitBreaker({self.key!r}, failure_threshold={self.failure_threshold!r}, "
            f"reset_timeout={self.reset_timeout!r})"
        )


def _refusal(state: str, failures: int, wait_us: int) -> str:
    # The same words as CircuitBreaker's refusals.
    if state == HALF_OPEN:
        return "circuit half-open: a trial call is in progress"
    return (
        f"circuit open after {failures} consecutive failures; "
        f"next trial in {wait_us / 1e6:.1f}s"
    )


# ------------------------------------------------------------------------------ helpers


async def _run(client: Any, source: str, key: str, *args: object) -> Any:
    """Run a script on `client` (EVALSHA, loading it first if the server lacks it)."""
    script = client.register_script(source)
    return await script(keys=[key], args=args, client=client)


def _text(value: str | bytes) -> str:
    """Script replies are bytes unless the client decodes them."""
    return value.decode() if isinstance(value, bytes) else value


def _check_key(key: object) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError(f"key must be a non-empty str, got {key!r}")
