"""Nothing from a workflow can inject code into the generated module."""

from __future__ import annotations

import ast

from kflow import AsyncLocalRuntime, AsyncWorkflowBuilder, ErrorHandler, compile_workflow

HOSTILE = [
    'a"); import os; ("',
    "b'); import os; ('",
    "c\nimport os\n",
    'd"""\nimport os\n"""',
    "e\\",
    "f # comment\rimport os",
    "g\u2028import os",
]


def hostile_workflow() -> AsyncWorkflowBuilder:
    builder = AsyncWorkflowBuilder('wf"""\nimport os\n"""', description='desc\nimport os # """')
    previous = None
    for i, node_id in enumerate(HOSTILE):
        builder.add_async_code(
            node_id,
            f"result = (x if x is not None else 0) + {i}" if previous else f"result = {i}",
            description=f'step {i}\nimport os"""',
            error_handler=ErrorHandler("fallback", fallback_value={'k"); import os; ("': node_id}),
        )
        if previous:
            builder.add_connection(previous, "result", node_id, "x")
        previous = node_id
    return builder


def test_hostile_ids_and_strings_stay_data():
    source = compile_workflow(hostile_workflow().build()).source
    tree = ast.parse(source)
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    assert [ast.unparse(n) for n in imports] == ["import kflow_runtime as rt"]
    top_level = [type(n).__name__ for n in tree.body]
    assert top_level.count("AsyncFunctionDef") == len(HOSTILE) + 2  # nodes, run(), run_many()
    # Every hostile id appears only as a string constant, never as code.
    constants = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}
    assert set(HOSTILE) <= constants


async def test_hostile_workflow_runs():
    envelope = await AsyncLocalRuntime().execute_workflow_async(hostile_workflow().build(), {})
    assert envelope["status"] == "success", envelope["errors"]
    assert envelope["results"][HOSTILE[-1]] == sum(range(len(HOSTILE)))
