"""Workflow "test_workflow", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

import kflow_runtime as rt

# Built for runtime interface 1: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(1, __name__, "0.2.0")

WORKFLOW = "test_workflow"
NODES = ("test_node",)
# Each required workflow input, and the nodes whose code reads it.
REQUIRED_INPUTS = {"input_value": ("test_node",)}


# Node "test_node": workflow.py:6
async def node_test_node(*, input_value):
    result = {'processed': True, 'value': input_value * 2}
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
        await ctx.call(
            "test_node",
            node_test_node,
            inputs=("input_value",),
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
        "node_test_node": "19-21 20:8 21:8",
    },
)


if __name__ == "__main__":
    raise SystemExit(rt.main(run, run_many=run_many))
