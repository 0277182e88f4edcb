"""`kflowc build` / `kflowc run` and the generated module's own command line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from kflow import Workflow

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


def run_module(path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True,
                          timeout=120)


def test_build_then_run_the_module(kflowc, tmp_path):
    workflow = tmp_path / "workflow.py"
    shutil.copy(GOLDEN / "unit_testing" / "workflow.py", workflow)
    out = tmp_path / "out.py"
    code, _, stderr = kflowc("build", str(workflow), "-o", str(out))
    assert code == 0, stderr
    assert f"wrote {out} (1 node)\n" in stderr
    assert "workflow inputs: input_value" in stderr
    assert out.read_text() == (GOLDEN / "unit_testing" / "expected.py").read_text()

    done = run_module(out, "--inputs", '{"input_value": 21}')
    assert done.returncode == 0, done.stderr
    envelope = json.loads(done.stdout)
    assert envelope["status"] == "success"
    assert envelope["results"] == {"test_node": {"processed": True, "value": 42}}

    inputs_file = tmp_path / "inputs.json"
    inputs_file.write_text('{"input_value": "ab"}')
    done = run_module(out, "--inputs-file", str(inputs_file))
    assert done.returncode == 0 and json.loads(done.stdout)["results"]["test_node"]["value"] == "abab"


def test_module_exit_codes(tmp_path):
    out = tmp_path / "out.py"
    shutil.copy(GOLDEN / "unit_testing" / "expected.py", out)
    failed = run_module(out, "--inputs", '{"input_value": null}')
    assert failed.returncode == 1
    assert "TypeError" in json.loads(failed.stdout)["errors"]["test_node"]
    missing = run_module(out, "--inputs", "{}")
    assert missing.returncode == 2
    assert json.loads(missing.stdout)["errors"] == {
        "test_node": "InputError: missing required input 'input_value'"
    }
    bad = run_module(out, "--inputs", "{not json")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith("error: --inputs: not valid JSON")
    not_object = run_module(out, "--inputs", "[1]")
    assert not_object.returncode == 2 and "must be a JSON object" in not_object.stderr


def test_kflowc_run_prints_the_envelope(kflowc):
    code, stdout, _ = kflowc("run", str(GOLDEN / "unit_testing" / "workflow.py"),
                             "--inputs", '{"input_value": 4}')
    assert code == 0
    assert json.loads(stdout)["results"] == {"test_node": {"processed": True, "value": 8}}
    code, stdout, _ = kflowc("run", str(GOLDEN / "unit_testing" / "workflow.py"))
    assert code == 2 and json.loads(stdout)["status"] == "failed"
    code, _, stderr = kflowc("run", str(GOLDEN / "unit_testing" / "workflow.py"), "--inputs", "{")
    assert code == 2 and "bad inputs" in stderr


def test_emit_ir_and_build_from_ir(kflowc, tmp_path):
    ir = tmp_path / "ir.json"
    out1, out2 = tmp_path / "a.py", tmp_path / "b.py"
    source = str(GOLDEN / "data_paths" / "workflow.py")
    assert kflowc("build", source, "--emit-ir", str(ir), "-o", str(out1))[0] == 0
    workflow = Workflow.from_json(ir.read_text())
    assert [n.id for n in workflow.nodes] == ["data_fetcher", "processor"]
    assert kflowc("build", str(ir), "-o", str(out2))[0] == 0
    assert out2.read_text() == out1.read_text()


def test_name_option_and_build_function(kflowc, write_workflow):
    path = write_workflow(
        """
        from kailash.workflow import AsyncWorkflowBuilder

        def build_workflow():
            b = AsyncWorkflowBuilder("made")
            b.add_async_code("x", "result = 1")
            return b.build()

        def other():
            b = AsyncWorkflowBuilder("other")
            b.add_async_code("y", "result = 2")
            return b
        """
    )
    code, stdout, _ = kflowc("build", path)
    assert code == 0 and 'WORKFLOW = "made"' in stdout
    code, stdout, _ = kflowc("build", "--name", "other", path)
    assert code == 0 and 'WORKFLOW = "other"' in stdout
    code, _, stderr = kflowc("build", "--name", "missing", path)
    assert code == 2 and "defines no 'missing'" in stderr


def test_same_bytes_from_any_directory(kflowc, tmp_path):
    first = tmp_path / "one" / "deep" / "workflow.py"
    second = tmp_path / "two" / "workflow.py"
    for target in (first, second):
        target.parent.mkdir(parents=True)
        shutil.copy(GOLDEN / "fan_out_fan_in" / "workflow.py", target)
    _, out1, _ = kflowc("build", str(first))
    _, out2, _ = kflowc("build", str(second))
    assert out1 == out2
    assert str(tmp_path) not in out1


def test_generated_module_imports_only_runtime_lib_and_stdlib():
    import ast

    stdlib = set(sys.stdlib_module_names)
    for expected in GOLDEN.glob("*/expected.py"):
        tree = ast.parse(expected.read_text())
        for node in tree.body:
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {node.module.split(".")[0]}
            else:
                continue
            allowed = stdlib | {"kflow_runtime", "aiohttp", "asyncpg", "redis"}
            assert roots <= allowed, (expected, roots)
