"""Workflow "controlling_concurrency", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

import functools

import kflow_runtime as rt

# Built for runtime interface 2: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(2, __name__, "0.2.0")

WORKFLOW = "controlling_concurrency"
NODES = ("numbers", "cpu_intensive", "io_intensive", "memory_intensive")
# Durable runs (--checkpoint): node -> (fingerprint of its code, options and inputs; the
# nodes it reads). A resume re-runs a node whose fingerprint changed, and what it feeds.
DURABLE = {
    "numbers": ("4316c8c37a227e42", ()),
    "cpu_intensive": ("971084fb6a1a53c4", ("numbers",)),
    "io_intensive": ("f479b915b45bc28d", ("numbers",)),
    "memory_intensive": ("f5be90873b457866", ("numbers",)),
}
# Each node's kind and line in workflow.py, for traces.
NODE_INFO = {
    "numbers": ("code", "workflow.py:36"),
    "cpu_intensive": ("parallel_map", "workflow.py:39"),
    "io_intensive": ("parallel_map", "workflow.py:48"),
    "memory_intensive": ("parallel_map", "workflow.py:56"),
}


# Node "numbers": workflow.py:36
async def node_numbers():
    result = list(range(20))
    return result


# Node "cpu_intensive", defines process_item: workflow.py:39
@functools.cache
def functions_cpu_intensive():
    def cpu_bound_function(item):
        return {"item": item, "digest": digest(str(item))}

    ROUNDS = 200

    import hashlib

    def digest(text):
        value = text.encode()
        for _ in range(ROUNDS):
            value = hashlib.sha256(value).digest()
        return value.hex()[:12]

    process_item = cpu_bound_function
    return process_item


def item_cpu_intensive(item):
    # Module level, so the process pool can pickle it by reference.
    return functions_cpu_intensive()(item)


async def node_cpu_intensive(*, items):
    process_item = item_cpu_intensive
    return await rt.parallel_map(
        process_item,
        items,
        max_workers=4,
        batch_size=10,
        timeout_per_item=5.0,
        executor="process",
    )


# Node "io_intensive", defines process_item: workflow.py:48
async def functions_io_intensive():
    def io_bound_function(item):
        return {"item": item, "root": math.isqrt(item)}

    import math

    process_item = io_bound_function
    return process_item


async def node_io_intensive(*, items):
    process_item = await functions_io_intensive()
    return await rt.parallel_map(
        process_item,
        items,
        max_workers=50,
        batch_size=100,
        timeout_per_item=5.0,
        executor="thread",
    )


# Node "memory_intensive", defines process_item: workflow.py:56
async def functions_memory_intensive():
    def memory_bound_function(item):
        block = [item] * 1000
        return sum(block)

    process_item = memory_bound_function
    return process_item


async def node_memory_intensive(*, items):
    process_item = await functions_memory_intensive()
    return await rt.parallel_map(
        process_item,
        items,
        max_workers=5,
        batch_size=5,
        timeout_per_item=120.0,
        executor="thread",
    )


async def chain_cpu_intensive(ctx: rt.Run) -> None:
    await ctx.call(
        "cpu_intensive",
        node_cpu_intensive,
        wires=(("items", "numbers", ()),),
        timeout=None,
    )


async def chain_io_intensive(ctx: rt.Run) -> None:
    await ctx.call(
        "io_intensive",
        node_io_intensive,
        wires=(("items", "numbers", ()),),
        timeout=None,
    )


async def chain_memory_intensive(ctx: rt.Run) -> None:
    await ctx.call(
        "memory_intensive",
        node_memory_intensive,
        wires=(("items", "numbers", ()),),
        timeout=None,
    )


async def run_nodes(ctx: rt.Run) -> None:
    """The workflow's wiring, in stages: one node after another, or chains at once, each
    waiting for what it reads."""
    await ctx.call("numbers", node_numbers, timeout=None)
    await ctx.concurrently(
        chain_cpu_intensive,
        chain_io_intensive,
        chain_memory_intensive,
    )


# Lines of this module -> lines of workflow.py, so errors name the user's own line.
SOURCE_MAP = rt.SourceMap(
    "workflow.py",
    {
        "node_numbers": "34-36 35:36 36:36",
        "functions_cpu_intensive": "41-56 42:22 43:23 45:25 47:27 49:29 50:30 51:31 52:32 53:33 55:35 56:35",
        "functions_io_intensive": "77-84 78:26 79:27 81:29 83:31 84:31",
        "functions_memory_intensive": "100-106 101:30 102:31 103:32 105:34 106:34",
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
