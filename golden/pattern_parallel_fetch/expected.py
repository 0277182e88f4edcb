"""Workflow "parallel_fetch", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

import asyncio

import kflow_runtime as rt

# Built for runtime interface 1: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(1, __name__, "0.2.0")

WORKFLOW = "parallel_fetch"
NODES = ("multi_fetch", "summary")
# Each required workflow input, and the nodes whose code reads it.
REQUIRED_INPUTS = {"count": ("multi_fetch",)}


# Node "multi_fetch", operation 'fast': workflow.py:7
async def fetch_multi_fetch_fast(*, count):
    await asyncio.sleep(0.01)
    result = {"source": "fast", "count": count}
    return result


# Node "multi_fetch", operation 'slow': workflow.py:7
async def fetch_multi_fetch_slow():
    await asyncio.sleep(30)
    result = "never"
    return result


# Node "multi_fetch", operation 'broken': workflow.py:7
async def fetch_multi_fetch_broken(*, count):
    result = {"ratio": count / 0}
    return result


async def node_multi_fetch(*, count):
    operations = {
        "fast": lambda: fetch_multi_fetch_fast(count=count),
        "slow": fetch_multi_fetch_slow,
        "broken": lambda: fetch_multi_fetch_broken(count=count),
    }
    return await rt.parallel_fetch(
        operations, timeout_per_operation=0.2, continue_on_error=True
    )


# Node "summary": workflow.py:27
async def node_summary(*, successful, failed):
    result = {"ok": sorted(successful), "failed": sorted(failed)}
    return result


async def run(
    inputs: dict | None = None, *, observer: rt.Observer | None = None
) -> dict:
    """Run the workflow once and return its envelope; `observer` watches the run."""
    async with rt.Run(
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
        await ctx.call("multi_fetch", node_multi_fetch, inputs=("count",))
        await ctx.call(
            "summary",
            node_summary,
            wires=(
                ("successful", "multi_fetch", ("successful",)),
                ("failed", "multi_fetch", ("failed",)),
            ),
            timeout=None,
        )
    return ctx.envelope()


async def run_many(
    inputs_list: list[dict], *, max_concurrency: int = 10, **options
) -> list[dict]:
    """Run the workflow once per inputs, at most `max_concurrency` at a time.

    Returns the envelopes in input order; `options` are run()'s.
    """
    return await rt.run_each(
        run, inputs_list, max_concurrency=max_concurrency, **options
    )


# Lines of this module -> lines of workflow.py, so errors name the user's own line.
SOURCE_MAP = rt.SourceMap(
    "workflow.py",
    {
        "fetch_multi_fetch_fast": "21-24 22:12 23:13 24:13",
        "fetch_multi_fetch_slow": "28-31 29:16 30:17 31:17",
        "fetch_multi_fetch_broken": "35-37 36:20 37:20",
        "node_summary": "52-54 53:28 54:28",
    },
)


if __name__ == "__main__":
    raise SystemExit(rt.main(run, run_many=run_many))
