"""The guide's "4. Resilient External Service Integration": circuit breaker on the
primary, fallback to the backup, cache-aside in Redis.

Runs end to end in tests/integration with the primary down, against local aiohttp
servers (KFLOW_PRIMARY_API_BASE_URL, KFLOW_BACKUP_API_BASE_URL) and Redis.
"""

from kailash.workflow import AsyncPatterns, AsyncWorkflowBuilder

# Build a fault-tolerant service integration
builder = AsyncWorkflowBuilder("service_integration")

# Configure resources
builder = (builder
    .with_http_client("primary_api", base_url="https://primary.service.com")
    .with_http_client("backup_api", base_url="https://backup.service.com")
    .with_cache("cache"))

# Primary service with circuit breaker
AsyncPatterns.circuit_breaker(
    builder,
    "primary_service",
    """
    response = await primary_api.post("/process", json=request_data)
    if response.status != 200:
        raise Exception(f"Service error: {response.status}")
    result = await response.json()
    """,
    failure_threshold=5,
    reset_timeout=60.0
)

# Backup service as fallback
AsyncPatterns.timeout_with_fallback(
    builder,
    "try_primary",
    "use_backup",
    """
    # Try primary service first
    if primary_result.get("success", False):
        result = primary_result
    else:
        raise Exception("Primary service unavailable")
    """,
    """
    # Use backup service
    response = await backup_api.post("/process", json=request_data)
    result = await response.json()
    result["_used_backup"] = True
    """,
    timeout_seconds=10.0
)

# Cache successful results
AsyncPatterns.cache_aside(
    builder,
    "cache_check",
    "fetch_fresh",
    "cache_store",
    """
    # Fetch fresh data if not cached
    if not backup_result.get("_used_backup"):
        result = backup_result
    else:
        # For backup results, try to refresh from primary
        try:
            response = await primary_api.get(f"/data/{item_id}")
            result = await response.json()
        except:
            result = backup_result  # Fall back to backup data
    """,
    cache_key_template="service_data_{item_id}",
    ttl_seconds=1800  # 30 minutes
)

# Connect services
builder.add_connection("primary_service", None, "try_primary", "primary_result")
builder.add_connection("use_backup", None, "cache_check", "backup_result")

workflow = builder.build()

NEEDS_SERVICES = True
