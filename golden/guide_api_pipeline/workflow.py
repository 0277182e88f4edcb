"""The guide's "1. API Data Pipeline": rate-limited fetch -> parallel enrichment ->
batched insert into PostgreSQL.

Runs end to end in tests/integration against a local aiohttp server (through
KFLOW_API_BASE_URL) and the test PostgreSQL (KFLOW_DB_*).
"""

from kailash.workflow import AsyncPatterns, AsyncWorkflowBuilder

# Build a resilient API data processing pipeline
builder = AsyncWorkflowBuilder("api_pipeline")

# Configure resources (fluent interface for chaining)
builder = (builder
    .with_http_client("api", base_url="https://api.example.com")
    .with_database("db", host="localhost", database="myapp")
    .with_cache("cache", host="localhost"))

# Note: AsyncWorkflowBuilder automatically handles code indentation,
# so you can write naturally indented code strings

# Fetch data with rate limiting
AsyncPatterns.rate_limited(
    builder,
    "fetch_users",
    """
    response = await api.get("/users", params={"page": page_num})
    result = await response.json()
    """,
    requests_per_second=5
)

# Process users in parallel
builder.add_parallel_map(
    "process_users",
    """
    async def process_item(user):
        # Enrich user data
        profile_response = await api.get(f"/users/{user['id']}/profile")
        profile = await profile_response.json()

        return {
            "id": user["id"],
            "name": user["name"],
            "email": user["email"],
            "profile": profile
        }
    """,
    max_workers=10,
    continue_on_error=True
)

# Store with batch processing
AsyncPatterns.batch_processor(
    builder,
    "store_users",
    """
    async with db.acquire() as conn:
        for user in items:
            await conn.execute(
                "INSERT INTO users (id, name, email, profile) VALUES ($1, $2, $3, $4)",
                user["id"], user["name"], user["email"], json.dumps(user["profile"])
            )
        batch_results = [{"stored": True, "id": user["id"]} for user in items]
    """,
    batch_size=50
)

# Connect the pipeline
builder.add_connection("fetch_users", "result", "process_users", "items")
builder.add_connection("process_users", "results", "store_users", "items")

workflow = builder.build()

NEEDS_SERVICES = True
