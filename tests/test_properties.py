"""Properties of the compiler over random workflow IRs (tests/strategies.py), fed through
the JSON path `kflowc build ir.json` takes:

- compiling raises nothing but CompileError;
- every module produced compiles, holds only kflow's own top-level statements, imports
  without side effects and is the same bytes on a second build;
- the same bytes under two PYTHONHASHSEEDs, and the same envelope in-process as
  `python out.py`.

The example counts are CI-sized; `KFLOW_PROPERTY_EXAMPLES=2000 pytest tests/test_properties.py`
(or `python bench/bench_properties.py`) runs a longer search.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from golden_cases import normalise
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from strategies import workflow_ir

from kflow import CompileError, Workflow, compile_workflow
from kflow.format import format_source
from kflow.runtime import load_module

EXAMPLES = int(os.environ.get("KFLOW_PROPERTY_EXAMPLES", "60"))
REPO = Path(__file__).resolve().parent.parent
SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow,
                                                         HealthCheck.filter_too_much]}


def compiled_or_none(ir: str) -> str | None:
    try:
        return compile_workflow(Workflow.from_json(ir, file="ir.json"),
                                source_file="workflow.py").source
    except CompileError:
        return None


def top_level_is_kflows_own(source: str) -> None:
    """Imports, kflow's constants and state, functions, the `__main__` guard: nothing a
    workflow's text could have added."""
    tree = ast.parse(source)
    docstring, *body = tree.body
    assert isinstance(docstring, ast.Expr) and isinstance(docstring.value, ast.Constant)
    for statement in body:
        if isinstance(statement, ast.Import | ast.AsyncFunctionDef | ast.FunctionDef):
            continue
        if isinstance(statement, ast.Assign):
            assert all(isinstance(t, ast.Name) for t in statement.targets)
            continue
        if isinstance(statement, ast.Expr):  # rt.require_interface(...)
            assert ast.unparse(statement.value.func).endswith(".require_interface")
            continue
        assert isinstance(statement, ast.If), ast.unparse(statement)
        assert ast.unparse(statement.test) == "__name__ == '__main__'"
    imports = [alias.name for s in body if isinstance(s, ast.Import) for alias in s.names]
    assert "kflow_runtime" in imports


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(workflow_ir())
def test_any_ir_compiles_to_a_sound_module_or_a_compile_error(ir: str) -> None:
    source = compiled_or_none(ir)  # anything but CompileError fails the test
    if source is None:
        return
    compile(source, "out.py", "exec")
    assert format_source(source) == source  # black leaves it as it is
    top_level_is_kflows_own(source)
    assert compiled_or_none(ir) == source
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        module = load_module(source, "property")
    assert printed.getvalue() == ""
    assert callable(module.run) and isinstance(module.NODES, tuple)


def _build_in_subprocess(ir_files: list[Path], seed: str) -> list[str]:
    """Compile each IR file in a fresh interpreter with PYTHONHASHSEED=`seed`."""
    script = ("import json, sys; from kflow import Workflow, compile_workflow; "
              "print(json.dumps([compile_workflow(Workflow.from_json(open(f).read()), "
              "source_file='workflow.py').source for f in sys.argv[1:]]))")
    env = {**os.environ, "PYTHONHASHSEED": seed}
    done = subprocess.run([sys.executable, "-c", script, *map(str, ir_files)], env=env,
                          capture_output=True, text=True, timeout=300, check=True)
    return json.loads(done.stdout)


def _inputs(ir: str) -> dict:
    compiled = compile_workflow(Workflow.from_json(ir))
    return {name: 1 for name in compiled.workflow_inputs}


def _run_script(path: Path, inputs: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, str(path), "--inputs", json.dumps(inputs)],
                          cwd=path.parent, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 1), done.stderr
    return normalise(json.loads(done.stdout))


# Two fresh interpreters per example, so each example is several workflows.
@settings(max_examples=max(2, EXAMPLES // 30), **SETTINGS)
@given(st.lists(workflow_ir(), min_size=4, max_size=4))
def test_same_bytes_under_two_hash_seeds_and_the_same_envelope_as_a_script(irs: list[str]
                                                                          ) -> None:
    sources = {ir: compiled_or_none(ir) for ir in irs}
    good = [ir for ir, source in sources.items() if source is not None]
    assume(good)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        files = []
        for i, ir in enumerate(good):
            files.append(work / f"ir{i}.json")
            files[-1].write_text(ir)
        expected = [sources[ir] for ir in good]
        assert _build_in_subprocess(files, "1") == expected
        assert _build_in_subprocess(files, "2") == expected
        for i, (ir, source) in enumerate(zip(good, expected, strict=True)):
            script = work / f"out{i}.py"
            script.write_text(source)
            inputs = _inputs(ir)
            module = load_module(source, "property")
            in_process = normalise(asyncio.run(module.run(dict(inputs))))
            assert _run_script(script, inputs) == in_process
