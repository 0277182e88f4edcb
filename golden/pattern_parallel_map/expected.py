"""Workflow "parallel_map", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

import asyncio

import kflow_runtime as rt

# Built for runtime interface 2: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(2, __name__, "0.2.0")

WORKFLOW = "parallel_map"
NODES = ("load", "enrich")
# Durable runs (--checkpoint): node -> (fingerprint of its code, options and inputs; the
# nodes it reads). A resume re-runs a node whose fingerprint changed, and what it feeds.
DURABLE = {"load": ("df8df472d216005c", ()), "enrich": ("08ab96702ad09241", ("load",))}
# Each node's kind and line in workflow.py, for traces.
NODE_INFO = {
    "load": ("code", "workflow.py:7"),
    "enrich": ("parallel_map", "workflow.py:8"),
}
# Each required workflow input, and the nodes whose code reads it.
REQUIRED_INPUTS = {"greeting": ("enrich",)}


# Node "load": workflow.py:7
async def node_load():
    result = {'users': [{'id': i, 'name': f'user{i}'} for i in range(6)]}
    return result


# Node "enrich", defines process_item: workflow.py:8
async def functions_enrich(*, greeting):
    async def process_item(user):
        await asyncio.sleep(0.001)
        if user["id"] == 4:
            raise ValueError(f"user {user['id']} has no profile")
        return {"id": user["id"], "greeting": f"{greeting}, {user['name']}"}

    return process_item


async def node_enrich(*, items, greeting):
    process_item = await functions_enrich(greeting=greeting)
    return await rt.parallel_map(
        process_item, items, max_workers=3, timeout_per_item=5.0, continue_on_error=True
    )


async def run_nodes(ctx: rt.Run) -> None:
    """The workflow's wiring: each node's call, in order."""
    await ctx.call("load", node_load, timeout=None)
    await ctx.call(
        "enrich",
        node_enrich,
        wires=(("items", "load", ("users",)),),
        inputs=("greeting",),
        timeout=None,
    )


# Lines of this module -> lines of workflow.py, so errors name the user's own line.
SOURCE_MAP = rt.SourceMap(
    "workflow.py",
    {
        "node_load": "29-31 30:7 31:7",
        "functions_enrich": "35-42 36:11 37:12 38:13 39:14 40:15 42:15",
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
