"""Workflow "retry_with_backoff", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

from runtime_lib import Observer, RetryPolicy, Run, SourceMap, main
from runtime_lib.many import run_each

WORKFLOW = "retry_with_backoff"
NODES = ("operation",)
# Each required workflow input, and the nodes whose code reads it.
REQUIRED_INPUTS = {"calls": ("operation",)}


# Node "operation": workflow.py:7
async def node_operation(*, calls):
    calls.append(len(calls) + 1)
    if len(calls) < 3:
        raise ConnectionError(f"attempt {len(calls)} failed")
    result = {"succeeded_on": len(calls)}
    return result


async def run(inputs: dict | None = None, *, observer: Observer | None = None) -> dict:
    """Run the workflow once and return its envelope; `observer` watches the run."""
    async with Run(
        WORKFLOW,
        inputs,
        nodes=NODES,
        source_map=SOURCE_MAP,
        module_file=__file__,
        observer=observer,
    ) as ctx:
        if not ctx.require(REQUIRED_INPUTS):
            ctx.skip_all(NODES)
            return ctx.envelope()
        await ctx.call(
            "operation",
            node_operation,
            inputs=("calls",),
            retry=RetryPolicy(
                max_attempts=5,
                initial_delay=0.01,
                backoff_factor=2.0,
                max_delay=0.05,
                retry_on=(ConnectionError,),
            ),
        )
    return ctx.envelope()


async def run_many(
    inputs_list: list[dict], *, max_concurrency: int = 10, **options
) -> list[dict]:
    """Run the workflow once per inputs, at most `max_concurrency` at a time.

    Returns the envelopes in input order; `options` are run()'s.
    """
    return await run_each(run, inputs_list, max_concurrency=max_concurrency, **options)


# Lines of this module -> lines of workflow.py, so errors name the user's own line.
SOURCE_MAP = SourceMap(
    "workflow.py",
    {
        "node_operation": "17-22 18:11 19:12 20:13 21:14 22:14",
    },
)


if __name__ == "__main__":
    raise SystemExit(main(run, run_many=run_many))
