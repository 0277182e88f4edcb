"""One module shape (issue 14 part 14): every generated module has the same API, whether or
not it uses resources, and the plumbing is one `rt.Program` rather than code in each."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from kflow import AsyncWorkflowBuilder, compile_workflow
from kflow.runtime import load_module

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
CASES = sorted(p.parent.name for p in GOLDEN.glob("*/expected.py"))


@pytest.mark.parametrize("case", CASES)
def test_every_module_has_the_same_api(case):
    source = (GOLDEN / case / "expected.py").read_text()
    module = load_module(source, case)
    for name in ("run", "run_many", "open_resources"):
        assert callable(getattr(module, name)), name
    params = inspect.signature(module.run).parameters
    assert list(params)[:5] == ["inputs", "resources", "registry", "environ", "observer"]
    assert any(p.kind is p.VAR_KEYWORD for p in params.values())  # options for the run
    # The plumbing is not in the module: run/run_many/open_resources are not defined here.
    defined = {n.name for n in ast.parse(source).body
               if isinstance(n, ast.AsyncFunctionDef | ast.FunctionDef)}
    assert not defined & {"run", "run_many", "open_resources"}


async def test_a_module_without_resources_takes_open_resources_too():
    builder = AsyncWorkflowBuilder("plain")
    builder.add_async_code("double", "result = value * 2")
    module = load_module(compile_workflow(builder.build()).source, "plain")
    shared = module.open_resources()
    try:
        envelope = await module.run({"value": 21}, resources=shared, environ={})
        assert envelope["status"] == "success" and envelope["results"] == {"double": 42}
        envelopes = await module.run_many([{"value": 1}, {"value": 2}], resources=shared)
        assert [e["results"]["double"] for e in envelopes] == [2, 4]
    finally:
        await shared.aclose()
    with pytest.raises(TypeError):
        await module.run({"value": 1}, no_such_option=True)


def test_inputs_that_json_cannot_carry_are_named_instead_of_suggesting_inputs(tmp_path):
    builder = AsyncWorkflowBuilder("clients")
    builder.add_async_code("fetch", "rows = await api.get(page)\nresult = convert(rows)")
    builder.add_async_code("shape", "result = {'n': len(rows), 'first': options.get('x')}")
    builder.add_connection("fetch", "result", "shape", "rows")
    source = compile_workflow(builder.build()).source
    docstring = ast.get_docstring(ast.parse(source))
    assert "--inputs '{...}'" not in docstring
    assert ("Import it and `await run({...})`: these inputs are functions or clients, which "
            "JSON\n(`--inputs`) cannot carry: `api`, `convert`.") in docstring
    out = tmp_path / "out.py"
    out.write_text(source)
    done = subprocess.run([sys.executable, str(out), "--inputs", '{"page": 1, "options": {}}'],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        "note: Its inputs 'api', 'convert' are functions or clients, which --inputs (JSON) "
        "cannot give: import this module and `await run({'api': ..., 'convert': ...})`.")


def test_a_module_whose_inputs_are_json_suggests_inputs():
    docstring = ast.get_docstring(ast.parse((GOLDEN / "unit_testing" / "expected.py").read_text()))
    assert "Run it with `python <this file> --inputs '{...}'`" in docstring
