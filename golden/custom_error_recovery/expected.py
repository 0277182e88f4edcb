"""Workflow "robust", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

import asyncio
import time

import kflow_runtime as rt

# Built for runtime interface 1: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(1, __name__, "0.2.0")

WORKFLOW = "robust"
NODES = ("robust_operation",)
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
        await ctx.call(
            "robust_operation",
            node_robust_operation,
            inputs=("risky_operation",),
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
        "node_robust_operation": "24-52 25:11 27:13 28:14 30:16 31:17 32:18 33:19 34:20 35:21 36:22 37:23 38:24 39:25 41:27 42:28 44:30 45:31 47:33 48:34 49:35 50:36 52:37",
    },
)


if __name__ == "__main__":
    raise SystemExit(rt.main(run, run_many=run_many))
