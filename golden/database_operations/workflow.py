"""The guide's "Database Operations": a resource node and a transaction in node code.

Runs against PostgreSQL: tests/integration points it at the test database through
KFLOW_MAIN_DB_* variables and checks the rows afterwards.
"""

from kailash.workflow import AsyncWorkflowBuilder

builder = AsyncWorkflowBuilder("db_operations")

# Configure database with connection pooling
builder.with_database(
    "main_db",
    host="prod-db.company.com",
    database="analytics",
    user="app_user",
    password="secure_password",
    min_size=5,
    max_size=20
)

# Use database in operations
builder.add_resource_node(
    "query_users",
    "main_db",
    "fetch",
    {"query": "SELECT * FROM users WHERE created_at > $1", "params": ["2024-01-01"]}
)

# Or use in async code
builder.add_async_code(
    "complex_query",
    """
    async with db.acquire() as conn:
        # Complex transaction
        async with conn.transaction():
            users = await conn.fetch("SELECT * FROM users WHERE active = true")
            for user in users:
                await conn.execute(
                    "UPDATE user_stats SET last_seen = NOW() WHERE user_id = $1",
                    user["id"]
                )

        result = {"updated_users": len(users)}
    """,
    required_resources=["main_db"]
)

workflow = builder.build()

NEEDS_SERVICES = True
