"""Workflow "timeout_with_fallback", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

import asyncio

import kflow_runtime as rt

# Built for runtime interface 2: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(2, __name__, "0.2.0")

WORKFLOW = "timeout_with_fallback"
NODES = ("quote_live", "quote_cached", "rate_live", "rate_cached")
# Durable runs (--checkpoint): node -> (fingerprint of its code, options and inputs; the
# nodes it reads). A resume re-runs a node whose fingerprint changed, and what it feeds.
DURABLE = {
    "quote_live": ("b142067904bec2ed", ()),
    "quote_cached": ("74e95a41ee00107f", ("quote_live",)),
    "rate_live": ("4942ff1962370ceb", ()),
    "rate_cached": ("2d02118670e00365", ("rate_live",)),
}
# Each node's kind and line in workflow.py, for traces.
NODE_INFO = {
    "quote_live": ("fallback_primary", "workflow.py:7"),
    "quote_cached": ("fallback", "workflow.py:7"),
    "rate_live": ("fallback_primary", "workflow.py:20"),
    "rate_cached": ("fallback", "workflow.py:20"),
}
# Each required workflow input, and the nodes whose code reads it.
REQUIRED_INPUTS = {"delay": ("quote_live",)}


# Node "quote_live": workflow.py:7
async def node_quote_live(*, delay):
    await asyncio.sleep(delay)
    result = {"price": 101.5, "source": "live"}
    return result


# Node "quote_cached", fallback code: workflow.py:7
async def code_quote_cached():
    result = {"price": 100.0, "source": "cached"}
    return result


async def node_quote_cached(*, primary_output, primary_error):
    # "quote_live" failed or timed out: only then does this node's code run.
    if primary_error is None:
        return primary_output
    return await code_quote_cached()


# Node "rate_live": workflow.py:20
async def node_rate_live():
    result = {"rate": 1.08, "source": "live"}
    return result


# Node "rate_cached", fallback code: workflow.py:20
async def code_rate_cached():
    result = {"rate": 1.0, "source": "cached"}
    return result


async def node_rate_cached(*, primary_output, primary_error):
    # "rate_live" failed or timed out: only then does this node's code run.
    if primary_error is None:
        return primary_output
    return await code_rate_cached()


async def chain_quote_live(ctx: rt.Run) -> None:
    await ctx.call(
        "quote_live",
        node_quote_live,
        inputs=("delay",),
        timeout=0.1,
        on_error=rt.Recover(),
    )
    await ctx.call(
        "quote_cached",
        node_quote_cached,
        wires=(
            ("primary_output", "quote_live", ()),
            ("primary_error", "quote_live", None),
        ),
    )


async def chain_rate_live(ctx: rt.Run) -> None:
    await ctx.call("rate_live", node_rate_live, timeout=5.0, on_error=rt.Recover())
    await ctx.call(
        "rate_cached",
        node_rate_cached,
        wires=(
            ("primary_output", "rate_live", ()),
            ("primary_error", "rate_live", None),
        ),
    )


async def run_nodes(ctx: rt.Run) -> None:
    """The workflow's wiring: its chains at once, each waiting for what it reads."""
    await ctx.concurrently(
        chain_quote_live,
        chain_rate_live,
    )


# Lines of this module -> lines of workflow.py, so errors name the user's own line.
SOURCE_MAP = rt.SourceMap(
    "workflow.py",
    {
        "node_quote_live": "36-39 37:12 38:13 39:13",
        "code_quote_cached": "43-45 44:16 45:16",
        "node_rate_live": "56-58 57:25 58:25",
        "code_rate_cached": "62-64 63:28 64:28",
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
