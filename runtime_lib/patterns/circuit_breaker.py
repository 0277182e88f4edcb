"""CircuitBreaker: fail fast while a dependency keeps failing, then let one trial call decide.

closed -> open after `failure_threshold` consecutive failures; open calls fail at once without
running anything; once `reset_timeout` has passed, one call runs as a trial (half-open) while
other callers keep failing fast; its success closes the circuit, its failure opens it again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from kflow_runtime.observe import emit
from kflow_runtime.run import is_cancellation

from ._errors import error_message

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


class CircuitOpenError(Exception):
    """Names the fast failure of a call refused by an open (or testing) circuit."""


class CircuitBreaker:
    """Shared by every run in the process: no state is tied to an event loop, and a lock
    guards each transition (never held across an await), so loops in several threads may
    share one breaker too."""

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(failure_threshold, int) or failure_threshold < 1:
            raise ValueError(f"failure_threshold must be a positive int, got {failure_threshold!r}")
        if not reset_timeout >= 0:
            raise ValueError(f"reset_timeout must be >= 0 seconds, got {reset_timeout!r}")
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._state = CLOSED
        self._failures = 0  # consecutive failures
        self._opened_at = 0.0
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        """The state: "closed", "open" or "half_open" (a trial call is running)."""
        return self._state

    @property
    def failure_count(self) -> int:
        return self._failures

    async def call(self, fn: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
        """Run `fn()` unless the circuit refuses it; never raises for `fn`'s failure.

        Success: the value with `"success": True` added (a copy, for a dict) or
        `{"success": True, "value": value}`. Failure or refusal: `{"success": False, "error",
        "error_type", "circuit_state"}`, the state as it is after this call.
        """
        with self._lock:
            before = self._state
            refusal = self._admit()
            trial = self._state == HALF_OPEN and refusal is None
        if trial:
            _changed(before, HALF_OPEN)
        if refusal is not None:
            return _failure(refusal, CircuitOpenError.__name__, self._state)
        try:
            value = await fn()
        except BaseException as exc:
            if not is_cancellation(exc):  # SystemExit from the code is a failure like any other
                with self._lock:
                    before = self._state
                    self._on_failure(trial)
                    state = self._state
                _changed(before, state)
                return _failure(error_message(exc), type(exc).__name__, state)
            if trial:
                # Cancelled mid-trial: nothing was learnt, so the next caller may try at once.
                with self._lock:
                    self._state = OPEN
            raise
        with self._lock:
            before = self._state
            self._on_success(trial)
            after = self._state
        _changed(before, after)
        if isinstance(value, dict):
            return {**value, "success": True}
        return {"success": True, "value": value}

    def _admit(self) -> str | None:
        """None if the call may run (possibly as the trial); else why it is refused."""
        if self._state == CLOSED:
            return None
        if self._state == HALF_OPEN:
            return "circuit half-open: a trial call is in progress"
        waited = self._clock() - self._opened_at
        if waited >= self.reset_timeout:
            self._state = HALF_OPEN
            return None
        return (
            f"circuit open after {self._failures} consecutive failures; "
            f"next trial in {self.reset_timeout - waited:.1f}s"
        )

    def _on_failure(self, trial: bool) -> None:
        if trial:
            self._failures += 1
            self._open()
        elif self._state == CLOSED:
            # Calls admitted before the circuit opened do not count once it has.
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._open()

    def _on_success(self, trial: bool) -> None:
        if trial or self._state == CLOSED:
            self._state = CLOSED
            self._failures = 0

    def _open(self) -> None:
        self._state = OPEN
        self._opened_at = self._clock()

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(failure_threshold={self.failure_threshold!r}, "
            f"reset_timeout={self.reset_timeout!r}, state={self._state!r})"
        )


def _changed(before: str, after: str) -> None:
    if after != before:
        emit("kflow.breaker.state_change", {"kflow.breaker.from": before, "kflow.breaker.to": after})


def _failure(message: str, error_type: str, state: str) -> dict[str, Any]:
    return {"success": False, "error": message, "error_type": error_type, "circuit_state": state}
