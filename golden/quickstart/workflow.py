"""The guide's Quick Start: fetch, then process what was fetched.

`fetch_data` and `process_data` are not defined in the node code, so they are
workflow inputs: pass the functions in when running in-process.
"""

from kailash.workflow.builder import WorkflowBuilder  # noqa: F401 - the guide's imports
from kailash.runtime.local import LocalRuntime  # noqa: F401
from kailash.workflow import AsyncWorkflowBuilder
from kailash.runtime import AsyncLocalRuntime

# Create and execute an async workflow
builder = AsyncWorkflowBuilder("my_workflow")

# Add nodes
builder.add_async_code(
    "fetch",
    "result = await fetch_data()"
)

builder.add_async_code(
    "process",
    "result = await process_data(input_data)"
)

# Connect nodes
builder.add_connection("fetch", "result", "process", "input_data")

# Build
workflow = builder.build()


async def fetch_data():
    return [1, 2, 3]


async def process_data(data):
    return {"count": len(data), "total": sum(data)}


# Inputs to try the workflow with (the golden test runs it with these).
EXAMPLE_INPUTS = {"fetch_data": fetch_data, "process_data": process_data}


async def main():
    runtime = AsyncLocalRuntime()
    result = await runtime.execute_workflow_async(workflow, EXAMPLE_INPUTS)

    # Check results - AsyncLocalRuntime format
    if len(result["errors"]) == 0:
        print("Success:", result["results"])
    else:
        print("Errors:", result["errors"])


if __name__ == "__main__":
    import asyncio

    asyncio.run(main())
