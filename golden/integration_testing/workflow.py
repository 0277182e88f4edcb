"""The guide's "Integration Testing": a resource node on an injected resource.

`test_db` is not declared with `with_database`: it comes from the registry, so the
generated module expects it injected (`run(resources=...)` or a registry).
"""

from unittest.mock import AsyncMock

from kailash.workflow import AsyncWorkflowBuilder, ResourceRegistry

# Mock external resources
mock_registry = ResourceRegistry()
mock_db = AsyncMock()
mock_registry.register_instance("test_db", mock_db)

# Create workflow with resources
builder = AsyncWorkflowBuilder(resource_registry=mock_registry)
builder.add_resource_node(
    "db_operation",
    "test_db",
    "fetch",
    {"query": "SELECT 1"}
)

workflow = builder.build()


def example_inputs():
    mock_db.fetch.return_value = [{"result": 1}]
    return {}
