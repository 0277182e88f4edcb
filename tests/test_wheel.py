"""The wheels built from the repo work on their own, installed as a user installs them.

- The `kflow` wheel, in a fresh venv beside the `kflow-runtime` wheel: its `kflowc`
  console script compiles every golden workflow to exactly `expected.py` (so every
  template ships), and a pattern module it builds runs.
- The `kflow-runtime` wheel alone, in a fresh venv with none of the compiler's
  dependencies: a generated module runs there.
- Neither wheel installs a top-level name outside `kflow*`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "golden"
COMPILER_ONLY = ("libcst", "jinja2", "black", "click")


def run(*args: str, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600)
    if ok:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    dist = tmp_path_factory.mktemp("dist")
    for project in (REPO / "runtime_lib", REPO):
        run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist),
            str(project), cwd=dist)
    (runtime,) = dist.glob("kflow_runtime-*.whl")
    (compiler,) = dist.glob("kflow-*.whl")
    return {"runtime": runtime, "compiler": compiler}


def fresh_venv(where: Path, *, with_deps: bool) -> tuple[Path, Path]:
    """A venv (python, site-packages); with_deps: this interpreter's packages are visible
    as a plain path, so nothing is downloaded (their .pth files, kflow's editable install
    among them, are not processed from there)."""
    venv.create(where, with_pip=False)
    python = where / "bin" / "python"
    site = Path(run(str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))",
                    cwd=where).stdout.strip())
    if with_deps:
        (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return python, site


def install(wheel: Path, site: Path) -> None:
    run(sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
        str(wheel), cwd=site)


def top_level_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {name.split("/")[0] for name in archive.namelist()}


def test_wheels_install_only_kflow_names(wheels: dict[str, Path]) -> None:
    assert top_level_names(wheels["compiler"]) == {"kflow", "kflow-0.2.0.dist-info"}
    assert top_level_names(wheels["runtime"]) == {
        "kflow_runtime", "kflow_runtime-0.2.0.dist-info"
    }


def test_kflowc_from_the_wheel_builds_every_golden(wheels: dict[str, Path],
                                                   tmp_path: Path) -> None:
    python, site = fresh_venv(tmp_path / "venv", with_deps=True)
    install(wheels["runtime"], site)
    install(wheels["compiler"], site)
    # The console script, installed by pip's --target into site/bin: the entry point exists.
    kflowc = site / "bin" / "kflowc"
    assert kflowc.is_file(), "the wheel declares no kflowc entry point"
    where = run(str(python), "-c", "import kflow, kflow_runtime, kflow.templating as t;"
                "print(kflow.__file__, kflow_runtime.__file__, t.__file__)", cwd=tmp_path)
    assert str(REPO) not in where.stdout and where.stdout.count(str(site)) == 3

    cases = sorted(d for d in GOLDEN.iterdir() if (d / "expected.py").is_file())
    assert len(cases) >= 20
    for case in cases:
        work = tmp_path / "cases" / case.name
        shutil.copytree(case, work)
        done = run(str(python), str(kflowc), "build", "workflow.py", "-o", "out.py", cwd=work,
                   ok=False)
        assert done.returncode == 0, f"{case.name}: {done.stderr}"
        assert (work / "out.py").read_text() == (case / "expected.py").read_text(), case.name

    pattern = tmp_path / "cases" / "pattern_parallel_map"
    done = run(str(python), "out.py", "--inputs", '{"greeting": "Hi"}', cwd=pattern, ok=False)
    envelope = json.loads(done.stdout)
    assert envelope["results"]["enrich"]["statistics"]["total"] == 6, done.stderr
    assert len(envelope["results"]["enrich"]["results"]) == 5


def test_a_module_runs_with_only_kflow_runtime(wheels: dict[str, Path], tmp_path: Path) -> None:
    python, site = fresh_venv(tmp_path / "venv", with_deps=False)
    install(wheels["runtime"], site)
    absent = run(str(python), "-c", "import importlib.util as u;"
                 f"print([m for m in {COMPILER_ONLY!r} if u.find_spec(m)])", cwd=tmp_path)
    assert absent.stdout.strip() == "[]"
    for case, inputs, node, expected in (
        ("unit_testing", {"input_value": 5}, "test_node", {"processed": True, "value": 10}),
        ("pattern_retry_with_backoff", {"calls": []}, None, None),
    ):
        shutil.copy(GOLDEN / case / "expected.py", tmp_path / f"{case}.py")
        done = run(str(python), f"{case}.py", "--inputs", json.dumps(inputs), cwd=tmp_path,
                   ok=False)
        envelope = json.loads(done.stdout)
        assert envelope["status"] == "success", done.stderr
        if node is not None:
            assert envelope["results"][node] == expected
