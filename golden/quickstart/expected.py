"""Workflow "my_workflow", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

from runtime_lib import Observer, Run, SourceMap, main

WORKFLOW = "my_workflow"
NODES = ("fetch", "process")
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
        await ctx.call("fetch", node_fetch, inputs=("fetch_data",))
        await ctx.call(
            "process",
            node_process,
            wires=(("input_data", "fetch", ()),),
            inputs=("process_data",),
        )
    return ctx.envelope()


# Lines of this module -> lines of workflow.py, so errors name the user's own line.
SOURCE_MAP = SourceMap(
    "workflow.py",
    {
        "node_fetch": "16-18 17:18 18:18",
        "node_process": "22-24 23:23 24:23",
    },
)


if __name__ == "__main__":
    raise SystemExit(main(run))
