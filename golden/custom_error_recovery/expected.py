"""Workflow "robust", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Import it and `await run({...})`: these inputs are functions or clients, which JSON
(`--inputs`) cannot carry: `risky_operation`.
"""

import asyncio
import time

import kflow_runtime as rt

# Built for runtime interface 2: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(2, __name__, "0.2.0")

WORKFLOW = "robust"
NODES = ("robust_operation",)
# Durable runs (--checkpoint): node -> (fingerprint of its code, options and inputs; the
# nodes it reads). A resume re-runs a node whose fingerprint changed, and what it feeds.
DURABLE = {"robust_operation": ("91922a11cc703eb2", ())}
# Each node's kind and line in workflow.py, for traces.
NODE_INFO = {"robust_operation": ("code", "workflow.py:8")}
# Each required workflow input, and the nodes whose code reads it.
REQUIRED_INPUTS = {"risky_operation": ("robust_operation",)}


# Node "robust_operation": workflow.py:8
async def node_robust_operation(*, risky_operation):
    import logging

    success_count = 0
    errors = []

    for attempt in range(3):
        try:
            response = await risky_operation()
            success_count += 1
            break  # Success
        except Exception as e:
            error_info = {
                "attempt": attempt + 1,
                "error": str(e),
                "timestamp": time.time(),
            }
            errors.append(error_info)
            logging.warning(f"Attempt {attempt + 1} failed: {e}")

            if attempt < 2:  # Not final attempt
                await asyncio.sleep(0.01 * 2**attempt)  # Exponential backoff

    result = {
        "success": success_count > 0,
        "attempts": len(errors) + success_count,
        "errors": [e["error"] for e in errors] if errors else None,
    }
    return result


async def run_nodes(ctx: rt.Run) -> None:
    """The workflow's wiring: each node's call, in order."""
    await ctx.call(
        "robust_operation",
        node_robust_operation,
        inputs=("risky_operation",),
    )


# Lines of this module -> lines of workflow.py, so errors name the user's own line.
SOURCE_MAP = rt.SourceMap(
    "workflow.py",
    {
        "node_robust_operation": "28-56 29:11 31:13 32:14 34:16 35:17 36:18 37:19 38:20 39:21 40:22 41:23 42:24 43:25 45:27 46:28 48:30 49:31 51:33 52:34 53:35 54:36 56:37",
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
    not_json=("risky_operation",),
    durable=DURABLE,
)
run = PROGRAM.run
run_many = PROGRAM.run_many
open_resources = PROGRAM.open_resources


if __name__ == "__main__":
    raise SystemExit(PROGRAM.main())
