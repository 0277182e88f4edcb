"""Workflow "retry_with_backoff", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

import kflow_runtime as rt

# Built for runtime interface 2: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(2, __name__, "0.2.0")

WORKFLOW = "retry_with_backoff"
NODES = ("operation",)
# Durable runs (--checkpoint): node -> (fingerprint of its code, options and inputs; the
# nodes it reads). A resume re-runs a node whose fingerprint changed, and what it feeds.
DURABLE = {"operation": ("1e7069fa5d8888d3", ())}
# Each node's kind and line in workflow.py, for traces.
NODE_INFO = {"operation": ("retry_with_backoff", "workflow.py:7")}
# Each required workflow input, and the nodes whose code reads it.
REQUIRED_INPUTS = {"calls": ("operation",)}


# Node "operation": workflow.py:7
async def node_operation(*, calls):
    calls.append(len(calls) + 1)
    if len(calls) < 3:
        raise ConnectionError(f"attempt {len(calls)} failed")
    result = {"succeeded_on": len(calls)}
    return result


async def run_nodes(ctx: rt.Run) -> None:
    """The workflow's wiring: each node's call, in order."""
    await ctx.call(
        "operation",
        node_operation,
        inputs=("calls",),
        retry=rt.RetryPolicy(
            max_attempts=5,
            initial_delay=0.01,
            backoff_factor=2.0,
            max_delay=0.05,
            retry_exceptions=(ConnectionError,),
            jitter=True,
        ),
    )


# Lines of this module -> lines of workflow.py, so errors name the user's own line.
SOURCE_MAP = rt.SourceMap(
    "workflow.py",
    {
        "node_operation": "24-29 25:11 26:12 27:13 28:14 29:14",
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
