"""Workflow "fan_out_fan_in", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

import asyncio

from runtime_lib import Run, SourceMap, main

WORKFLOW = "fan_out_fan_in"


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


async def chain_source(ctx: Run) -> None:
    await ctx.call("source", node_source)
    await ctx.call(
        "processor_a",
        node_processor_a,
        wires=(("input", "source", ("data",)),),
    )


async def chain_processor_b(ctx: Run) -> None:
    await ctx.wait("source")
    await ctx.call(
        "processor_b",
        node_processor_b,
        wires=(("input", "source", ("data",)),),
    )


async def chain_processor_c(ctx: Run) -> None:
    await ctx.wait("source")
    await ctx.call(
        "processor_c",
        node_processor_c,
        wires=(("input", "source", ("data",)),),
    )


async def chain_monitor(ctx: Run) -> None:
    await ctx.wait("source")
    await ctx.call("monitor", node_monitor, wires=(("stats", "source", ("metadata",)),))


async def chain_aggregator(ctx: Run) -> None:
    await ctx.wait("processor_a", "processor_b", "processor_c")
    await ctx.call(
        "aggregator",
        node_aggregator,
        wires=(
            ("data_a", "processor_a", ()),
            ("data_b", "processor_b", ()),
            ("data_c", "processor_c", ()),
        ),
    )


async def run(inputs: dict | None = None) -> dict:
    """Run the workflow once and return its envelope."""
    async with Run(
        WORKFLOW, inputs, source_map=SOURCE_MAP, module_file=__file__
    ) as ctx:
        await asyncio.gather(
            chain_source(ctx),
            chain_processor_b(ctx),
            chain_processor_c(ctx),
            chain_monitor(ctx),
            chain_aggregator(ctx),
        )
    return ctx.envelope()


# Lines of this module -> lines of workflow.py, so errors name the user's own line.
SOURCE_MAP = SourceMap(
    "workflow.py",
    {
        "node_source": "15-17 16:8 17:8",
        "node_processor_a": "21-24 22:11 23:12 24:12",
        "node_processor_b": "28-31 29:15 30:16 31:16",
        "node_processor_c": "35-37 36:19 37:19",
        "node_monitor": "41-43 42:22 43:22",
        "node_aggregator": "47-49 48:25 49:25",
    },
)


if __name__ == "__main__":
    raise SystemExit(main(run))
