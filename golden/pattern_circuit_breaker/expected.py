"""Workflow "circuit_breaker", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

import asyncio

import kflow_runtime as rt

# Built for runtime interface 2: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(2, __name__, "0.2.0")

WORKFLOW = "circuit_breaker"
NODES = ("charge", "refund")
# Durable runs (--checkpoint): node -> (fingerprint of its code, options and inputs; the
# nodes it reads). A resume re-runs a node whose fingerprint changed, and what it feeds.
DURABLE = {"charge": ("6ff99989207efd99", ()), "refund": ("3025bd955e377e8a", ())}
# Each node's kind and line in workflow.py, for traces.
NODE_INFO = {
    "charge": ("circuit_breaker", "workflow.py:7"),
    "refund": ("circuit_breaker", "workflow.py:18"),
}
# Each required workflow input, and the nodes whose code reads it.
REQUIRED_INPUTS = {"amount": ("charge",), "limit": ("charge",)}


# Node "charge", guarded code: workflow.py:7
async def code_charge(*, amount, limit):
    if amount > limit:
        raise ValueError(f"amount {amount} over limit {limit}")
    result = {"charged": amount}
    return result


# Circuit breaker of node "charge", shared by every run in this process:
# opens after 3 failures in a row, tries once more after 30.0s.
breaker_charge = rt.CircuitBreaker(failure_threshold=3, reset_timeout=30.0)


async def node_charge(*, amount, limit):
    # A call that takes over 30.0s counts as a failure.
    return await breaker_charge.call(
        lambda: asyncio.wait_for(code_charge(amount=amount, limit=limit), 30.0)
    )


# Node "refund", guarded code: workflow.py:18
async def code_refund():
    raise ConnectionError("refund service down")


# Circuit breaker of node "refund", shared by every run in this process:
# opens after 3 failures in a row, tries once more after 30.0s.
breaker_refund = rt.CircuitBreaker(failure_threshold=3, reset_timeout=30.0)


async def node_refund():
    # A call that takes over 30.0s counts as a failure.
    return await breaker_refund.call(lambda: asyncio.wait_for(code_refund(), 30.0))


async def chain_charge(ctx: rt.Run) -> None:
    await ctx.call("charge", node_charge, inputs=("amount", "limit"), timeout=None)


async def chain_refund(ctx: rt.Run) -> None:
    await ctx.call("refund", node_refund, timeout=None)


async def run_nodes(ctx: rt.Run) -> None:
    """The workflow's wiring: its chains at once, each waiting for what it reads."""
    await ctx.concurrently(
        chain_charge,
        chain_refund,
    )


# Lines of this module -> lines of workflow.py, so errors name the user's own line.
SOURCE_MAP = rt.SourceMap(
    "workflow.py",
    {
        "code_charge": "29-33 30:11 31:12 32:13 33:13",
        "code_refund": "49-50 50:22",
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
