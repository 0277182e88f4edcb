"""kflowc as a well-behaved CLI, and the runtime interface a generated module checks.

Help and version on kflowc and on generated modules; output paths checked before
anything runs; written files get the mode a plain open() would give them.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kflow_runtime import RuntimeMismatch

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


def python(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def workflow(tmp_path: Path) -> Path:
    path = tmp_path / "workflow.py"
    shutil.copy(GOLDEN / "unit_testing" / "workflow.py", path)
    return path


def test_help_lists_every_subcommand_whole(kflowc) -> None:
    for flag in ("-h", "--help"):
        code, out, _ = kflowc(flag)
        assert code == 0
        commands = out.split("Commands:")[1].strip().splitlines()
        assert [line.split()[0] for line in commands] == ["build", "check", "graph", "run"]
        assert not any(line.rstrip().endswith("...") for line in commands), commands
    code, out, _ = kflowc("build", "-h")
    assert code == 0 and "--emit-ir" in out


def test_version_names_the_runtime_interface(kflowc) -> None:
    code, out, _ = kflowc("--version")
    assert code == 0
    assert out.strip() == ("kflowc 0.2.0: builds modules for kflow-runtime interface 2; "
                           "installed kflow-runtime 0.2.0 provides interface 2")


def test_shell_completion_is_documented_and_works(kflowc) -> None:
    code, out, _ = kflowc("-h")
    assert '_KFLOWC_COMPLETE=bash_source kflowc' in out
    env = {**os.environ, "_KFLOWC_COMPLETE": "bash_complete", "COMP_WORDS": "kflowc bu",
           "COMP_CWORD": "1"}
    done = subprocess.run([shutil.which("kflowc") or "kflowc"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.split() == ["plain,build"]


def test_build_says_one_node(kflowc, workflow: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.py"
    code, _, stderr = kflowc("build", str(workflow), "-o", str(out))
    assert code == 0
    assert stderr.splitlines()[0] == f"wrote {out} (1 node)"


def test_a_module_says_what_it_was_built_for(tmp_path: Path) -> None:
    module = tmp_path / "out.py"
    shutil.copy(GOLDEN / "unit_testing" / "expected.py", module)
    done = python(str(module), "--version", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout == ("out.py: built by kflow 0.2.0 for kflow-runtime interface 2; "
                           "running on kflow-runtime 0.2.0 (interface 2)\n")
    assert python(str(module), "-h", cwd=tmp_path).stdout.startswith("usage: out.py")


def future_module(tmp_path: Path) -> Path:
    """A module as a later kflowc, written for runtime interface 99, would build it."""
    source = (GOLDEN / "unit_testing" / "expected.py").read_text()
    line = 'rt.require_interface(2, __name__, "0.2.0")'
    assert line in source
    module = tmp_path / "future.py"
    module.write_text(source.replace(line, 'rt.require_interface(99, __name__, "9.0.0")'))
    return module


def test_a_module_for_another_runtime_fails_in_one_line(tmp_path: Path) -> None:
    done = python(str(future_module(tmp_path)), "--inputs", '{"input_value": 1}', cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        "error: this module was built by kflow 9.0.0 for kflow-runtime interface 99, but the "
        "installed kflow-runtime 0.2.0 provides interface 2: pip install "
        "'kflow-runtime==9.0.0', or rebuild the module with a kflowc of release 0.2.0\n"
    )


def test_importing_a_module_for_another_runtime_raises_an_import_error(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("future", future_module(tmp_path))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with pytest.raises(RuntimeMismatch, match="interface 99") as raised:
        spec.loader.exec_module(module)
    assert isinstance(raised.value, ImportError)


@pytest.mark.parametrize("option", ["-o", "--emit-ir"])
def test_build_into_a_missing_folder_writes_nothing(kflowc, workflow: Path, tmp_path: Path,
                                                    option: str) -> None:
    target = tmp_path / "nodir" / "out"
    code, out, stderr = kflowc("build", str(workflow), option, str(target))
    assert code == 2
    assert stderr == (f"error: {option} {target}: the folder {target.parent} does not exist; "
                      "create it first\n")
    assert out == "" and sorted(p.name for p in tmp_path.iterdir()) == ["workflow.py"]


def test_run_with_a_trace_into_a_missing_folder_runs_nothing(kflowc, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    workflow = tmp_path / "workflow.py"
    workflow.write_text(
        "from kailash.workflow import AsyncWorkflowBuilder\n"
        "builder = AsyncWorkflowBuilder('side_effect')\n"
        f"builder.add_async_code('touch', 'open({str(marker)!r}, \"w\").close(); result = 1')\n"
    )
    code, _, stderr = kflowc("run", str(workflow), "--trace", str(tmp_path / "nodir" / "t.json"))
    assert code == 2 and "does not exist" in stderr
    assert not marker.exists(), "the workflow ran before kflowc checked --trace"


def test_written_files_honour_the_umask(kflowc, workflow: Path, tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        out, ir = tmp_path / "out.py", tmp_path / "ir.json"
        assert kflowc("build", str(workflow), "-o", str(out), "--emit-ir", str(ir))[0] == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert stat.S_IMODE(ir.stat().st_mode) == 0o644


def test_rebuilding_keeps_the_modules_mode(kflowc, workflow: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.py"
    assert kflowc("build", str(workflow), "-o", str(out))[0] == 0
    out.chmod(0o755)
    assert kflowc("build", str(workflow), "-o", str(out))[0] == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o755


def test_ctrl_c_in_kflowc_run_prints_one_line_and_the_envelope(tmp_path: Path) -> None:
    import json
    import signal
    import time

    workflow = tmp_path / "workflow.py"
    started = tmp_path / "started"
    code = f"open({str(started)!r}, 'w').close()\nawait asyncio.sleep(3600)\nresult = 1"
    workflow.write_text(
        "from kailash.workflow import AsyncWorkflowBuilder\n"
        "builder = AsyncWorkflowBuilder('slow')\n"
        f"builder.add_async_code('wait', {code!r}, timeout=None)\n"
    )
    kflowc = shutil.which("kflowc") or "kflowc"
    proc = subprocess.Popen([kflowc, "run", str(workflow), "--quiet"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err == "interrupted by SIGINT: cancelled nodes 'wait'; resources closed\n"
    envelope = json.loads(out)
    assert envelope["status"] == "cancelled" and envelope["cancelled"] == ["wait"]
