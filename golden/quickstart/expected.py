"""Workflow "my_workflow", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Import it and `await run({...})`: these inputs are functions or clients, which JSON
(`--inputs`) cannot carry: `fetch_data`, `process_data`.
"""

import kflow_runtime as rt

# Built for runtime interface 2: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(2, __name__, "0.2.0")

WORKFLOW = "my_workflow"
NODES = ("fetch", "process")
# Durable runs (--checkpoint): node -> (fingerprint of its code, options and inputs; the
# nodes it reads). A resume re-runs a node whose fingerprint changed, and what it feeds.
DURABLE = {
    "fetch": ("2ea482a86c5e4884", ()),
    "process": ("1edc9adea11ad1be", ("fetch",)),
}
# Each node's kind and line in workflow.py, for traces.
NODE_INFO = {"fetch": ("code", "workflow.py:16"), "process": ("code", "workflow.py:21")}
# Each required workflow input, and the nodes whose code reads it.
REQUIRED_INPUTS = {"fetch_data": ("fetch",), "process_data": ("process",)}


# Node "fetch": workflow.py:16
async def node_fetch(*, fetch_data):
    result = await fetch_data()
    return result


# Node "process": workflow.py:21
async def node_process(*, input_data, process_data):
    result = await process_data(input_data)
    return result


async def run_nodes(ctx: rt.Run) -> None:
    """The workflow's wiring: each node's call, in order."""
    await ctx.call("fetch", node_fetch, inputs=("fetch_data",))
    await ctx.call(
        "process",
        node_process,
        wires=(("input_data", "fetch", ()),),
        inputs=("process_data",),
    )


# Lines of this module -> lines of workflow.py, so errors name the user's own line.
SOURCE_MAP = rt.SourceMap(
    "workflow.py",
    {
        "node_fetch": "28-30 29:18 30:18",
        "node_process": "34-36 35:23 36:23",
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
    not_json=("fetch_data", "process_data"),
    durable=DURABLE,
)
run = PROGRAM.run
run_many = PROGRAM.run_many
open_resources = PROGRAM.open_resources


if __name__ == "__main__":
    raise SystemExit(PROGRAM.main())
