"""Workflow "test_workflow", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

import kflow_runtime as rt

# Built for runtime interface 2: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(2, __name__, "0.2.0")

WORKFLOW = "test_workflow"
NODES = ("test_node",)
# Durable runs (--checkpoint): node -> (fingerprint of its code, options and inputs; the
# nodes it reads). A resume re-runs a node whose fingerprint changed, and what it feeds.
DURABLE = {"test_node": ("a0620422acb9938c", ())}
# Each node's kind and line in workflow.py, for traces.
NODE_INFO = {"test_node": ("code", "workflow.py:6")}
# Each required workflow input, and the nodes whose code reads it.
REQUIRED_INPUTS = {"input_value": ("test_node",)}


# Node "test_node": workflow.py:6
async def node_test_node(*, input_value):
    result = {'processed': True, 'value': input_value * 2}
    return result


async def run_nodes(ctx: rt.Run) -> None:
    """The workflow's wiring: each node's call, in order."""
    await ctx.call("test_node", node_test_node, inputs=("input_value",), timeout=None)


# Lines of this module -> lines of workflow.py, so errors name the user's own line.
SOURCE_MAP = rt.SourceMap(
    "workflow.py",
    {
        "node_test_node": "24-26 25:8 26:8",
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
