"""Many runs of one workflow in one process, with bounded concurrency.

Runs are fed through `parallel_map`, so they get its bounded worker pool and keep
their order, and, with `KFLOW_DASK_SCHEDULER` set, are spread over the cluster
like any other map.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any


async def _one(run: Callable[..., Awaitable[dict[str, Any]]], options: dict[str, Any],
               inputs: dict[str, Any]) -> dict[str, Any]:
    return await run(inputs, **options)


async def run_each(
    run: Callable[..., Awaitable[dict[str, Any]]],
    inputs_list: Iterable[dict[str, Any]],
    *,
    max_concurrency: int = 10,
    **options: Any,
) -> list[dict[str, Any]]:
    """One envelope per inputs, in order, with at most `max_concurrency` runs at once."""
    # Imported here: a module that never calls run_many should not pay for the patterns.
    from kflow_runtime.patterns.parallel_map import parallel_map

    inputs_list = list(inputs_list)
    outcome = await parallel_map(
        functools.partial(_one, run, options), inputs_list, max_workers=max_concurrency,
        timeout_per_item=None, continue_on_error=True,
    )
    if not outcome["errors"]:
        return outcome["results"]
    # A run that raised instead of returning its envelope (cancelled, or a bug) still gets
    # an envelope in its place, so the answer stays one per input.
    envelopes: list[dict[str, Any]] = []
    results = iter(outcome["results"])
    failures = {e["index"]: e for e in outcome["errors"]}
    for index in range(len(inputs_list)):
        if index in failures:
            record = failures[index]
            envelopes.append({"status": "failed", "results": {}, "skipped": [],
                              "errors": {"run": f"{record['error_type']}: {record['error']}"}})
        else:
            envelopes.append(next(results))
    return envelopes
