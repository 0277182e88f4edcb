"""Workflow "batch_processor", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

import kflow_runtime as rt

# Built for runtime interface 2: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(2, __name__, "0.2.0")

WORKFLOW = "batch_processor"
NODES = ("load", "square")
# Durable runs (--checkpoint): node -> (fingerprint of its code, options and inputs; the
# nodes it reads). A resume re-runs a node whose fingerprint changed, and what it feeds.
DURABLE = {"load": ("f01e17b812467438", ()), "square": ("9e930becaaa29bb8", ("load",))}
# Each node's kind and line in workflow.py, for traces.
NODE_INFO = {
    "load": ("code", "workflow.py:7"),
    "square": ("batch_processor", "workflow.py:8"),
}


# Node "load": workflow.py:7
async def node_load():
    result = list(range(1, 11))
    return result


# Node "square", run once per batch of `items`: workflow.py:8
async def code_square(*, items, batch_results):
    batch_results = [{"n": n, "square": n * n, "batch_size": len(items)} for n in items]
    return batch_results


async def node_square(*, items):
    async def process_batch(chunk):
        return await code_square(items=chunk, batch_results=[])

    return await rt.batch_process(process_batch, items, batch_size=4)


async def run_nodes(ctx: rt.Run) -> None:
    """The workflow's wiring: each node's call, in order."""
    await ctx.call("load", node_load, timeout=None)
    await ctx.call("square", node_square, wires=(("items", "load", ()),))


# Lines of this module -> lines of workflow.py, so errors name the user's own line.
SOURCE_MAP = rt.SourceMap(
    "workflow.py",
    {
        "node_load": "25-27 26:7 27:7",
        "code_square": "31-33 32:12 33:12",
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
    durable=DURABLE,
)
run = PROGRAM.run
run_many = PROGRAM.run_many
open_resources = PROGRAM.open_resources


if __name__ == "__main__":
    raise SystemExit(PROGRAM.main())
