"""Workflow "fan_out_fan_in", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

import asyncio

import kflow_runtime as rt

# Built for runtime interface 2: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(2, __name__, "0.2.0")

WORKFLOW = "fan_out_fan_in"
NODES = ("source", "processor_a", "processor_b", "processor_c", "monitor", "aggregator")
# Durable runs (--checkpoint): node -> (fingerprint of its code, options and inputs; the
# nodes it reads). A resume re-runs a node whose fingerprint changed, and what it feeds.
DURABLE = {
    "source": ("6dd466db590a025c", ()),
    "processor_a": ("8de369df6e9522ce", ("source",)),
    "processor_b": ("e86fc3d6193489b9", ("source",)),
    "processor_c": ("1e74504779cbc617", ("source",)),
    "monitor": ("30525e8e179c4384", ("source",)),
    "aggregator": ("5790a616262ae5f3", ("processor_a", "processor_b", "processor_c")),
}
# Each node's kind and line in workflow.py, for traces.
NODE_INFO = {
    "source": ("code", "workflow.py:7"),
    "processor_a": ("code", "workflow.py:10"),
    "processor_b": ("code", "workflow.py:14"),
    "processor_c": ("code", "workflow.py:18"),
    "monitor": ("code", "workflow.py:21"),
    "aggregator": ("code", "workflow.py:24"),
}


# Node "source": workflow.py:7
async def node_source():
    result = {"data": [3, 1, 2], "metadata": {"origin": "sensor-7", "count": 3}}
    return result


# Node "processor_a": workflow.py:10
async def node_processor_a(*, input):
    await asyncio.sleep(0.01)
    result = sorted(input)
    return result


# Node "processor_b": workflow.py:14
async def node_processor_b(*, input):
    await asyncio.sleep(0.01)
    result = sum(input)
    return result


# Node "processor_c": workflow.py:18
async def node_processor_c(*, input):
    result = max(input)
    return result


# Node "monitor": workflow.py:21
async def node_monitor(*, stats):
    result = {"seen": stats["count"], "origin": stats["origin"]}
    return result


# Node "aggregator": workflow.py:24
async def node_aggregator(*, data_a, data_b, data_c):
    result = {"sorted": data_a, "total": data_b, "largest": data_c}
    return result


async def chain_processor_a(ctx: rt.Run) -> None:
    await ctx.call(
        "processor_a",
        node_processor_a,
        wires=(("input", "source", ("data",)),),
    )


async def chain_processor_b(ctx: rt.Run) -> None:
    await ctx.call(
        "processor_b",
        node_processor_b,
        wires=(("input", "source", ("data",)),),
    )


async def chain_processor_c(ctx: rt.Run) -> None:
    await ctx.call(
        "processor_c",
        node_processor_c,
        wires=(("input", "source", ("data",)),),
        timeout=None,
    )


async def chain_monitor(ctx: rt.Run) -> None:
    await ctx.call(
        "monitor",
        node_monitor,
        wires=(("stats", "source", ("metadata",)),),
        timeout=None,
    )


async def chain_aggregator(ctx: rt.Run) -> None:
    await ctx.wait("processor_a", "processor_b", "processor_c")
    await ctx.call(
        "aggregator",
        node_aggregator,
        wires=(
            ("data_a", "processor_a", ()),
            ("data_b", "processor_b", ()),
            ("data_c", "processor_c", ()),
        ),
        timeout=None,
    )


async def run_nodes(ctx: rt.Run) -> None:
    """The workflow's wiring, in stages: one node after another, or chains at once, each
    waiting for what it reads."""
    await ctx.call("source", node_source, timeout=None)
    await ctx.concurrently(
        chain_processor_a,
        chain_processor_b,
        chain_processor_c,
        chain_monitor,
        chain_aggregator,
    )


# Lines of this module -> lines of workflow.py, so errors name the user's own line.
SOURCE_MAP = rt.SourceMap(
    "workflow.py",
    {
        "node_source": "38-40 39:8 40:8",
        "node_processor_a": "44-47 45:11 46:12 47:12",
        "node_processor_b": "51-54 52:15 53:16 54:16",
        "node_processor_c": "58-60 59:19 60:19",
        "node_monitor": "64-66 65:22 66:22",
        "node_aggregator": "70-72 71:25 72:25",
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
