"""timeout_with_fallback: a slow primary is replaced by the fallback; a fast one passes."""

from kailash.workflow import AsyncPatterns, AsyncWorkflowBuilder

builder = AsyncWorkflowBuilder("timeout_with_fallback")

AsyncPatterns.timeout_with_fallback(
    builder,
    "quote_live",
    "quote_cached",
    """
    await asyncio.sleep(delay)
    result = {"price": 101.5, "source": "live"}
    """,
    """
    result = {"price": 100.0, "source": "cached"}
    """,
    timeout_seconds=0.1,
)
AsyncPatterns.timeout_with_fallback(
    builder,
    "rate_live",
    "rate_cached",
    """
    result = {"rate": 1.08, "source": "live"}
    """,
    """
    result = {"rate": 1.0, "source": "cached"}
    """,
    timeout_seconds=5.0,
)

workflow = builder.build()

EXAMPLE_INPUTS = {"delay": 10}
