"""Workflow "parallel_fetch", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

import asyncio

import kflow_runtime as rt

# Built for runtime interface 2: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(2, __name__, "0.2.0")

WORKFLOW = "parallel_fetch"
NODES = ("multi_fetch", "summary")
# Durable runs (--checkpoint): node -> (fingerprint of its code, options and inputs; the
# nodes it reads). A resume re-runs a node whose fingerprint changed, and what it feeds.
DURABLE = {
    "multi_fetch": ("19fcfce0eb124510", ()),
    "summary": ("804a1034a14a3add", ("multi_fetch",)),
}
# Each node's kind and line in workflow.py, for traces.
NODE_INFO = {
    "multi_fetch": ("parallel_fetch", "workflow.py:7"),
    "summary": ("code", "workflow.py:27"),
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


async def run_nodes(ctx: rt.Run) -> None:
    """The workflow's wiring: each node's call, in order."""
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


# Lines of this module -> lines of workflow.py, so errors name the user's own line.
SOURCE_MAP = rt.SourceMap(
    "workflow.py",
    {
        "fetch_multi_fetch_fast": "32-35 33:12 34:13 35:13",
        "fetch_multi_fetch_slow": "39-42 40:16 41:17 42:17",
        "fetch_multi_fetch_broken": "46-48 47:20 48:20",
        "node_summary": "63-65 64:28 65:28",
    },
)

# run(), run_many(), open_resources() and the command line: the same in every module.
PROGRAM = rt.Program(
    WORKFLOW,
    NODES,
    run_nodes,
    info=NODE_INFO,
    source_map=SOURCE_MAP,
    module_file=__file__,
    module=__name__,
    required_inputs=REQUIRED_INPUTS,
    durable=DURABLE,
)
run = PROGRAM.run
run_many = PROGRAM.run_many
open_resources = PROGRAM.open_resources


if __name__ == "__main__":
    raise SystemExit(PROGRAM.main())
