"""Workflow "payments", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

import aiohttp
import asyncio

import kflow_runtime as rt

# Built for runtime interface 1: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(1, __name__, "0.2.0")

WORKFLOW = "payments"
NODES = ("critical_operation", "refund")
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
        await ctx.concurrently(
            chain_critical_operation,
            chain_refund,
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
        "node_critical_operation": "31-39 33:27 34:28 35:29 36:30 37:31 39:32",
        "node_refund": "43-46 44:43 45:44 46:44",
    },
)


if __name__ == "__main__":
    raise SystemExit(rt.main(run, run_many=run_many))
