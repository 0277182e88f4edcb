"""Workflow "payments", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Import it and `await run({...})`: these inputs are functions or clients, which JSON
(`--inputs`) cannot carry: `external_service`, `refund_service`.
"""

import aiohttp
import asyncio

import kflow_runtime as rt

# Built for runtime interface 2: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(2, __name__, "0.2.0")

WORKFLOW = "payments"
NODES = ("critical_operation", "refund")
# Durable runs (--checkpoint): node -> (fingerprint of its code, options and inputs; the
# nodes it reads). A resume re-runs a node whose fingerprint changed, and what it feeds.
DURABLE = {
    "critical_operation": ("e6efe55af54dcf9f", ()),
    "refund": ("42ec647c9cb61d51", ()),
}
# Each node's kind and line in workflow.py, for traces.
NODE_INFO = {
    "critical_operation": ("code", "workflow.py:23"),
    "refund": ("code", "workflow.py:40"),
}
# Each required workflow input, and the nodes whose code reads it.
REQUIRED_INPUTS = {
    "external_service": ("critical_operation",),
    "payment_data": ("critical_operation", "refund"),
    "refund_service": ("refund",),
}


# Node "critical_operation": workflow.py:23
async def node_critical_operation(*, external_service, payment_data):
    # Critical business operation
    response = await external_service.process_payment(payment_data)
    result = {
        "transaction_id": response["id"],
        "status": response["status"],
        "amount": response["amount"],
    }
    return result


# Node "refund": workflow.py:40
async def node_refund(*, refund_service, payment_data):
    response = await refund_service.process_payment(payment_data)
    result = {"transaction_id": response["id"]}
    return result


async def chain_critical_operation(ctx: rt.Run) -> None:
    await ctx.call(
        "critical_operation",
        node_critical_operation,
        inputs=("external_service", "payment_data"),
        timeout=60.0,
        retry=rt.RetryPolicy(
            max_attempts=3,
            initial_delay=0.05,
            backoff_factor=2.0,
            max_delay=60.0,
            retry_exceptions=(aiohttp.ClientError, asyncio.TimeoutError),
        ),
        on_error=rt.Fallback({"success": False, "recovered": True, "data": None}),
    )


async def chain_refund(ctx: rt.Run) -> None:
    await ctx.call(
        "refund",
        node_refund,
        inputs=("refund_service", "payment_data"),
        timeout=60.0,
        retry=rt.RetryPolicy(
            max_attempts=3,
            initial_delay=0.05,
            backoff_factor=2.0,
            max_delay=60.0,
            retry_exceptions=(aiohttp.ClientError, asyncio.TimeoutError),
        ),
        on_error=rt.Fallback({"success": False, "recovered": True, "data": None}),
    )


async def run_nodes(ctx: rt.Run) -> None:
    """The workflow's wiring: its chains at once, each waiting for what it reads."""
    await ctx.concurrently(
        chain_critical_operation,
        chain_refund,
    )


# Lines of this module -> lines of workflow.py, so errors name the user's own line.
SOURCE_MAP = rt.SourceMap(
    "workflow.py",
    {
        "node_critical_operation": "38-46 40:27 41:28 42:29 43:30 44:31 46:32",
        "node_refund": "50-53 51:43 52:44 53:44",
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
    not_json=("external_service", "refund_service"),
    durable=DURABLE,
)
run = PROGRAM.run
run_many = PROGRAM.run_many
open_resources = PROGRAM.open_resources


if __name__ == "__main__":
    raise SystemExit(PROGRAM.main())
