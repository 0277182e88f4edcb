"""retry_with_backoff: retried until it works; the attempt count goes to the envelope."""

from kailash.workflow import AsyncPatterns, AsyncWorkflowBuilder

builder = AsyncWorkflowBuilder("retry_with_backoff")

AsyncPatterns.retry_with_backoff(
    builder,
    "operation",
    """
    calls.append(len(calls) + 1)
    if len(calls) < 3:
        raise ConnectionError(f"attempt {len(calls)} failed")
    result = {"succeeded_on": len(calls)}
    """,
    max_retries=5,
    initial_backoff=0.01,
    max_backoff=0.05,
    retry_on=[ConnectionError],
)

workflow = builder.build()


def example_inputs():
    return {"calls": []}
