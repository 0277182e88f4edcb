"""circuit_breaker: the result gains "success"; a failure becomes data, not an error."""

from kailash.workflow import AsyncPatterns, AsyncWorkflowBuilder

builder = AsyncWorkflowBuilder("circuit_breaker")

AsyncPatterns.circuit_breaker(
    builder,
    "charge",
    """
    if amount > limit:
        raise ValueError(f"amount {amount} over limit {limit}")
    result = {"charged": amount}
    """,
    failure_threshold=3,
    reset_timeout=30.0,
)
AsyncPatterns.circuit_breaker(
    builder,
    "refund",
    """
    raise ConnectionError("refund service down")
    """,
    failure_threshold=3,
    reset_timeout=30.0,
)

workflow = builder.build()

EXAMPLE_INPUTS = {"amount": 40, "limit": 100}
