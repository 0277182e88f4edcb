"""The guide's "Comprehensive Error Recovery": retries, then a fallback value."""

import aiohttp
from kailash.workflow import AsyncRetryPolicy, AsyncWorkflowBuilder, ErrorHandler

builder = AsyncWorkflowBuilder("payments")

# Configure retry behavior
retry_policy = AsyncRetryPolicy(
    max_attempts=3,
    initial_delay=0.05,
    backoff_factor=2.0,
    retry_exceptions=["aiohttp.ClientError", "asyncio.TimeoutError"]
)

# Configure fallback handling
error_handler = ErrorHandler(
    handler_type="fallback",
    fallback_value={"success": False, "recovered": True, "data": None}
)

# Apply to critical operations
builder.add_async_code(
    "critical_operation",
    """
    # Critical business operation
    response = await external_service.process_payment(payment_data)
    result = {
        "transaction_id": response["id"],
        "status": response["status"],
        "amount": response["amount"]
    }
    """,
    retry_policy=retry_policy,
    error_handler=error_handler,
    timeout=60
)

# A second payment whose service is down for good: the fallback value is the output.
builder.add_async_code(
    "refund",
    """
    response = await refund_service.process_payment(payment_data)
    result = {"transaction_id": response["id"]}
    """,
    retry_policy=retry_policy,
    error_handler=error_handler,
    timeout=60
)

workflow = builder.build()


class FlakyPaymentService:
    """Fails with a connection error `failures` times, then charges."""

    def __init__(self, failures: int) -> None:
        self.failures = failures

    async def process_payment(self, payment):
        if self.failures > 0:
            self.failures -= 1
            raise aiohttp.ClientConnectionError("connection reset by peer")
        return {"id": "tx-1", "status": "charged", "amount": payment["amount"]}


def example_inputs():
    return {
        "external_service": FlakyPaymentService(failures=1),
        "refund_service": FlakyPaymentService(failures=10),
        "payment_data": {"amount": 42},
    }
