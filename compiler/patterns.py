"""`AsyncPatterns`: the guide's resilience patterns, each adding one node (or two, or three).

Each pattern is a node kind with its own module under `kflow.kinds` (its parameters,
analysis, emission and this authoring function) and a template in
`templates/patterns/`; `AsyncPatterns` gathers the kinds' authoring functions, so a new
pattern needs no change here.
"""

from __future__ import annotations

from kflow.kinds import patterns


class AsyncPatterns:
    """The guide's patterns: `AsyncPatterns.<pattern>(builder, node_id, ...)`.

    rate_limited, parallel_fetch, circuit_breaker, timeout_with_fallback, cache_aside,
    retry_with_backoff, batch_processor (see each one's own docstring).
    """


for _name, _function in patterns().items():
    setattr(AsyncPatterns, _name, staticmethod(_function))
