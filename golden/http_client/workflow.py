"""The guide's "HTTP Client Configuration": an authenticated client used by node code.

Runs against a local aiohttp server in tests/integration (KFLOW_AUTHENTICATED_API_BASE_URL
points the client at it; the token comes from KFLOW_AUTHENTICATED_API_HEADERS_AUTHORIZATION).
"""

from kailash.workflow import AsyncWorkflowBuilder

builder = AsyncWorkflowBuilder("http_client")

# Configure HTTP client with authentication
builder.with_http_client(
    "authenticated_api",
    base_url="https://api.service.com",
    headers={
        "Authorization": "Bearer your-token",
        "User-Agent": "MyApp/1.0"
    },
    timeout=30,
    connection_limit=50
)

# Use in API calls
builder.add_async_code(
    "api_call",
    """
    # Client is pre-configured with auth and base URL
    response = await authenticated_api.get("/users", params={"limit": 100})

    if response.status == 200:
        data = await response.json()
        result = {"users": data["users"], "total": data["total"]}
    else:
        raise Exception(f"API error: {response.status}")
    """,
    required_resources=["authenticated_api"]
)

workflow = builder.build()

NEEDS_SERVICES = True
