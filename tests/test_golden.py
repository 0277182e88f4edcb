"""Golden cases: each compiles to exactly expected.py, which is stable under black,
and runs to exactly expected_envelope.json. `pytest --update-golden` rewrites both.
Cases that need PostgreSQL, Redis or HTTP run in tests/integration instead."""

from __future__ import annotations

import json

import pytest
from golden_cases import Case, cases, example_inputs, normalise, runnable_cases

from kflow import AsyncLocalRuntime, compile_workflow
from kflow.analyze import analyse
from kflow.builder import runtime_extras
from kflow.codegen import ModuleBuilder
from kflow.format import format_source
from kflow.layout import too_long
from kflow.runtime import load_module
from kflow.templating import render

CASES = cases()
RUNNABLE = runnable_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_compiles_to_expected_bytes(case: Case, update_golden: bool) -> None:
    workflow, _ = case.load()
    source = compile_workflow(workflow, source_file="workflow.py").source
    if update_golden or not case.expected_file.exists():
        case.expected_file.write_text(source)
    assert source == case.expected_file.read_text(), (
        f"{case.name}: generated module differs from golden; rerun with --update-golden "
        "if the change is intended"
    )
    # Stable: black leaves it as it is, and compiling again gives the same bytes.
    assert format_source(source) == source
    # The runner is laid out without black (its fast path): no line may need black.
    context = ModuleBuilder(analyse(workflow), "workflow.py").build()
    assert not too_long(render("runner.py.j2", module=context))
    assert compile_workflow(workflow, source_file="workflow.py").source == source


@pytest.mark.parametrize("case", RUNNABLE, ids=[c.name for c in RUNNABLE])
async def test_runs_to_expected_envelope(case: Case, update_golden: bool) -> None:
    workflow, namespace = case.load()
    envelope = normalise(
        await AsyncLocalRuntime().execute_workflow_async(workflow, example_inputs(namespace))
    )
    if update_golden or not case.envelope_file.exists():
        case.envelope_file.write_text(json.dumps(envelope, indent=2, sort_keys=True) + "\n")
    assert envelope == json.loads(case.envelope_file.read_text())


@pytest.mark.parametrize("case", RUNNABLE, ids=[c.name for c in RUNNABLE])
async def test_shipped_module_is_the_one_that_runs(case: Case) -> None:
    """The golden file itself, imported as a module, gives the same envelope."""
    workflow, namespace = case.load()
    module = load_module(case.expected_file.read_text(), f"golden-{case.name}")
    inputs = example_inputs(namespace)
    if hasattr(module, "RESOURCES"):
        # Resources the builder got from a registry are injected the same way here.
        envelope = await module.run(inputs, registry=runtime_extras(workflow).registry)
    else:
        envelope = await module.run(inputs)
    envelope = normalise(envelope)
    assert envelope == json.loads(case.envelope_file.read_text())
