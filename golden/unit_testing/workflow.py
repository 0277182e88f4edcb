"""The guide's "Unit Testing" workflow: one node doubling an input."""

from kailash.workflow import AsyncWorkflowBuilder

builder = AsyncWorkflowBuilder("test_workflow")
builder.add_async_code(
    "test_node",
    "result = {'processed': True, 'value': input_value * 2}"
)

workflow = builder.build()

EXAMPLE_INPUTS = {"input_value": 21}
