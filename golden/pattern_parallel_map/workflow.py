"""parallel_map with a code string: bounded workers, order kept, errors as records."""

from kailash.workflow import AsyncWorkflowBuilder

builder = AsyncWorkflowBuilder("parallel_map")

builder.add_async_code("load", "result = {'users': [{'id': i, 'name': f'user{i}'} for i in range(6)]}")
builder.add_parallel_map(
    "enrich",
    """
    async def process_item(user):
        await asyncio.sleep(0.001)
        if user["id"] == 4:
            raise ValueError(f"user {user['id']} has no profile")
        return {"id": user["id"], "greeting": f"{greeting}, {user['name']}"}
    """,
    max_workers=3,
    continue_on_error=True,
)
builder.add_connection("load", "result.users", "enrich", "items")

workflow = builder.build()

EXAMPLE_INPUTS = {"greeting": "Hello"}
