"""Installed modules read without an import (`aiohttp.ClientError`, `np`, `pd`) are
imported lazily by the generated module, with an info diagnostic, instead of becoming
required workflow inputs that fail every run (issue 14.10)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

WORKFLOW = '''
from kailash.workflow import AsyncWorkflowBuilder
builder = AsyncWorkflowBuilder("lazy")
builder.add_async_code("stats", """
if use_numpy:
    arr = np.array(values)
    frame = pd.DataFrame({"v": values})
    result = {"mean": float(arr.mean()), "rows": len(frame)}
else:
    try:
        result = {"words": token.split()}
    except aiohttp.ClientError:
        result = None
""")
workflow = builder.build()
'''


def test_installed_modules_are_imported_lazily(kflowc, write_workflow, tmp_path):
    path = write_workflow(WORKFLOW)
    out = tmp_path / "lazy_out.py"
    code, stdout, stderr = kflowc("build", path, "-o", str(out))
    assert code == 0, stderr
    text = out.read_text()
    assert (
        "# Installed modules node code reads without importing them: imported when first used.\n"
        'aiohttp = rt.lazy_import("aiohttp")\n'
        'np = rt.lazy_import("numpy")\n'
        'pd = rt.lazy_import("pandas")\n'
    ) in text
    # `token.split()`: the stdlib has a `token` module, but not with a `split`.
    assert "workflow inputs: token, use_numpy, values" in stderr
    assert "workflow.py:5:11: info KF111: node 'stats': `np` is taken to be the installed " \
           "module numpy (as np), imported when first used" in stderr

    # The branch that never runs never imports aiohttp or numpy.
    probe = (
        "import asyncio, json, sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "import lazy_out\n"
        "envelope = asyncio.run(lazy_out.run({'use_numpy': False, 'token': 'a b', "
        "'values': []}))\n"
        "print(json.dumps([envelope['status'], envelope['results'], "
        "'numpy' in sys.modules, 'aiohttp' in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["success", {"stats": {"words": ["a", "b"]}}, False,
                                       False]
    done = subprocess.run([sys.executable, str(out), "--inputs",
                           '{"use_numpy": true, "values": [1, 2, 3], "token": ""}'],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"] == {"stats": {"mean": 2.0, "rows": 3}}


def test_check_reports_the_lazy_import_as_a_note(kflowc, write_workflow):
    path = write_workflow(WORKFLOW)
    code, stdout, _ = kflowc("check", "--format", "json", path)
    found = json.loads(stdout)["diagnostics"]
    notes = {d["message"].split("`")[1]: d for d in found if d["code"] == "KF111"}
    assert sorted(notes) == ["aiohttp", "np", "pd"]
    assert notes["aiohttp"]["severity"] == "info" and notes["aiohttp"]["line"] == 11
    assert not [d for d in found if d["code"] == "KF101" and "`np`" in d["message"]]
    assert code == 0


def test_a_name_also_read_bare_is_an_input():
    from kflow import AsyncWorkflowBuilder, compile_workflow

    builder = AsyncWorkflowBuilder("w")
    builder.add_async_code("a", "result = (np.mean(xs), np)")
    compiled = compile_workflow(builder.build())
    assert sorted(compiled.workflow_inputs) == ["np", "xs"]


def test_a_lazy_module_missing_where_it_runs_says_what_to_install():
    import kflow_runtime as rt

    missing = rt.lazy_import("kflow_no_such_module")
    with pytest.raises(ImportError) as caught:
        missing.anything  # noqa: B018 - the read is the test
    assert str(caught.value) == ("node code uses the module 'kflow_no_such_module', which is "
                                 "not installed here: pip install kflow_no_such_module")
