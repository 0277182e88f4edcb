"""Workflow "my_workflow", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

import kflow_runtime as rt

# Built for runtime interface 1: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(1, __name__, "0.2.0")

WORKFLOW = "my_workflow"
NODES = ("fetch", "process")
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


async def run(
    inputs: dict | None = None, *, observer: rt.Observer | None = None
) -> dict:
    """Run the workflow once and return its envelope; `observer` watches the run."""
    async with rt.Run(
        WORKFLOW,
        inputs,
        nodes=NODES,
        info=NODE_INFO,
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
        "node_fetch": "21-23 22:18 23:18",
        "node_process": "27-29 28:23 29:23",
    },
)


if __name__ == "__main__":
    raise SystemExit(rt.main(run, run_many=run_many))
