"""The wheel built from the repo works on its own: installed in a fresh venv, kflowc
finds its templates and the generated module runs with runtime_lib from the wheel."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_wheel_in_a_fresh_venv(tmp_path: Path) -> None:
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
        "-w", str(tmp_path / "dist"), str(REPO), cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("kflow-*.whl")

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = Path(run(str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))",
                    cwd=tmp_path).stdout.strip())
    # The dependencies come from this interpreter's site-packages, added as a plain path:
    # its .pth files (among them kflow's editable install) are not processed there.
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    run(sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
        str(wheel), cwd=tmp_path)

    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(REPO / "golden" / "unit_testing" / "workflow.py", work / "workflow.py")
    where = run(str(python), "-c", "import compiler, templates, runtime_lib;"
                "print(compiler.__file__, templates.__file__, runtime_lib.__file__)", cwd=work)
    assert str(REPO) not in where.stdout and str(site) in where.stdout

    run(str(python), "-m", "compiler", "build", "workflow.py", "-o", "out.py", cwd=work)
    assert (work / "out.py").read_text() == (REPO / "golden/unit_testing/expected.py").read_text()
    done = run(str(python), "out.py", "--inputs", '{"input_value": 5}', cwd=work)
    assert json.loads(done.stdout)["results"] == {"test_node": {"processed": True, "value": 10}}
