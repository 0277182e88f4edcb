"""The guide's "Integration Testing" example, with the guide's imports (kflow's pytest plugin provides them)."""

from unittest.mock import AsyncMock

import pytest
from kailash.resources import ResourceRegistry
from kailash.runtime import AsyncLocalRuntime
from kailash.workflow import AsyncWorkflowBuilder


@pytest.mark.asyncio
async def test_resource_integration():
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
    runtime = AsyncLocalRuntime(resource_registry=mock_registry)

    # Configure mock behavior
    mock_db.fetch.return_value = [{"result": 1}]

    # Execute and verify
    result = await runtime.execute_workflow_async(workflow, {})
    assert result["status"] == "success"
    mock_db.fetch.assert_called_once()
    assert result["results"]["db_operation"] == [{"result": 1}]
    mock_db.fetch.assert_called_once_with("SELECT 1")
