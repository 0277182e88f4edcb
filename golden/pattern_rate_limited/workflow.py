"""rate_limited: a token bucket shared by every run in the process."""

from kailash.workflow import AsyncPatterns, AsyncWorkflowBuilder

builder = AsyncWorkflowBuilder("rate_limited")

AsyncPatterns.rate_limited(
    builder,
    "fetch_page",
    """
    result = {"page": page_num, "items": [page_num * 10 + i for i in range(3)]}
    """,
    requests_per_second=5,
    burst_size=2,
)

workflow = builder.build()

EXAMPLE_INPUTS = {"page_num": 3}
