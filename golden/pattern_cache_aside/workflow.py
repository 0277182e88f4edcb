"""cache_aside: look up Redis; fetch only on a miss; store with a TTL.

Runs against Redis in tests/integration (hit skips the fetch code, miss stores).
"""

from kailash.workflow import AsyncPatterns, AsyncWorkflowBuilder

builder = AsyncWorkflowBuilder("cache_aside").with_cache("cache", host="localhost")

AsyncPatterns.cache_aside(
    builder,
    "profile_cached",
    "profile_fetch",
    "profile_store",
    """
    fetches.append(user_id)
    result = {"id": user_id, "name": f"user-{user_id}", "tier": tier}
    """,
    cache_key_template="profile_{user_id}",
    ttl_seconds=300,
)

workflow = builder.build()

NEEDS_SERVICES = True
