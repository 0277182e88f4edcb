"""parallel_fetch: operations run concurrently, each with its own timeout."""

from kailash.workflow import AsyncPatterns, AsyncWorkflowBuilder

builder = AsyncWorkflowBuilder("parallel_fetch")

AsyncPatterns.parallel_fetch(
    builder,
    "multi_fetch",
    {
        "fast": """
            await asyncio.sleep(0.01)
            result = {"source": "fast", "count": count}
        """,
        "slow": """
            await asyncio.sleep(30)
            result = "never"
        """,
        "broken": """
            result = {"ratio": count / 0}
        """,
    },
    timeout_per_operation=0.2,
    continue_on_error=True,
)

builder.add_async_code("summary", """
result = {"ok": sorted(successful), "failed": sorted(failed)}
""")
builder.add_connection("multi_fetch", "successful", "summary", "successful")
builder.add_connection("multi_fetch", "failed", "summary", "failed")

workflow = builder.build()

EXAMPLE_INPUTS = {"count": 7}
