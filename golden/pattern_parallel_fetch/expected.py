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
# Durable runs (--checkpoint): node -> (fingerprint of its code, options and inputs; the
# nodes it reads). A resume re-runs a node whose fingerprint changed, and what it feeds.
DURABLE = {
    "multi_fetch": ("19fcfce0eb124510", ()),
    "summary": ("804a1034a14a3add", ("multi_fetch",)),
}
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
    inputs: dict | None = None,
    *,
    observer: rt.Observer | None = None,
    checkpoint: str | None = None,
    run_id: str | None = None,
) -> dict:
    """Run the workflow once and return its envelope; `observer` watches the run.

    `checkpoint` (a SQLite file or postgresql:// URL) stores each node's outcome as it
    ends: run again with the same `run_id` to resume (docs/durable.md).
    """
    async with rt.Run(
        WORKFLOW,
        inputs,
        nodes=NODES,
        source_map=SOURCE_MAP,
        module_file=__file__,
        observer=observer,
        durable=DURABLE,
        checkpoint=checkpoint,
        run_id=run_id,
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
        "fetch_multi_fetch_fast": "27-30 28:12 29:13 30:13",
        "fetch_multi_fetch_slow": "34-37 35:16 36:17 37:17",
        "fetch_multi_fetch_broken": "41-43 42:20 43:20",
        "node_summary": "58-60 59:28 60:28",
    },
)


if __name__ == "__main__":
    raise SystemExit(rt.main(run, run_many=run_many))
