"""batch_processor: the code runs once per chunk of `batch_size` items."""

from kailash.workflow import AsyncPatterns, AsyncWorkflowBuilder

builder = AsyncWorkflowBuilder("batch_processor")

builder.add_async_code("load", "result = list(range(1, 11))")
AsyncPatterns.batch_processor(
    builder,
    "square",
    """
    batch_results = [{"n": n, "square": n * n, "batch_size": len(items)} for n in items]
    """,
    batch_size=4,
)
builder.add_connection("load", "result", "square", "items")

workflow = builder.build()
