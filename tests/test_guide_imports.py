"""The guide's own imports where users write them: under pytest and in scripts.

Each test runs a fresh interpreter in a folder of its own (outside this repo's conftest),
as a user's project would: kflow is installed, the real Kailash SDK is not.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# The guide's first lines (section "Quick Start") and its "Unit Testing" and
# "Integration Testing" examples, verbatim. The guide never says where ResourceRegistry
# comes from; kflow's kailash modules all hold it.
GUIDE_IMPORTS = """\
from kailash.workflow import AsyncWorkflowBuilder
from kailash.runtime import AsyncLocalRuntime
from kailash.resources import ResourceRegistry
"""

UNIT_TESTING = '''
import pytest
from unittest.mock import AsyncMock

@pytest.mark.asyncio
async def test_async_workflow():
    # Create workflow
    builder = AsyncWorkflowBuilder("test_workflow")
    builder.add_async_code(
        "test_node",
        "result = {'processed': True, 'value': input_value * 2}"
    )

    workflow = builder.build()

    # Execute with test data
    runtime = AsyncLocalRuntime()
    result = await runtime.execute_workflow_async(
        workflow,
        {"input_value": 21}
    )

    # Verify results
    assert result["status"] == "success"
    assert result["results"]["test_node"]["processed"] is True
    assert result["results"]["test_node"]["value"] == 42
'''

INTEGRATION_TESTING = '''
@pytest.mark.asyncio
async def test_resource_integration():
    # Mock external resources
    mock_registry = ResourceRegistry()
    mock_db = AsyncMock()
    mock_registry.register_instance("test_db", mock_db)

    # Create workflow with resources
    builder = AsyncWorkflowBuilder(resource_registry=mock_registry)
    builder.add_resource_node(
        "db_operation",
        "test_db",
        "fetch",
        {"query": "SELECT 1"}
    )

    workflow = builder.build()
    runtime = AsyncLocalRuntime(resource_registry=mock_registry)

    # Configure mock behavior
    mock_db.fetch.return_value = [{"result": 1}]

    # Execute and verify
    result = await runtime.execute_workflow_async(workflow, {})
    assert result["status"] == "success"
    mock_db.fetch.assert_called_once()
'''


def python(*args: str, cwd: Path, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def guide_tests(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    write(project / "test_guide.py", GUIDE_IMPORTS + UNIT_TESTING + INTEGRATION_TESTING)
    return project


@pytest.mark.parametrize("asyncio_support", ["pytest-asyncio", "kflow's plugin"])
def test_the_guides_testing_examples_pass_under_plain_pytest(guide_tests: Path,
                                                             asyncio_support: str) -> None:
    # `-p no:asyncio` takes pytest-asyncio away: kflow's plugin then runs the coroutines.
    extra = ["-p", "no:asyncio"] if asyncio_support == "kflow's plugin" else []
    done = python("-m", "pytest", "-q", "-p", "no:cacheprovider", *extra, cwd=guide_tests)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def test_a_real_kailash_is_never_shadowed(guide_tests: Path, tmp_path: Path) -> None:
    real = tmp_path / "site"
    write(real / "kailash" / "__init__.py", "")
    write(real / "kailash" / "workflow.py", "AsyncWorkflowBuilder = 'the real one'\n")
    write(guide_tests / "test_real.py", """
        def test_real():
            from kailash.workflow import AsyncWorkflowBuilder
            assert AsyncWorkflowBuilder == 'the real one'
    """)
    done = python("-m", "pytest", "-q", "-p", "no:cacheprovider", "test_real.py",
                  cwd=guide_tests, env={"PYTHONPATH": str(real)})
    assert done.returncode == 0, done.stdout + done.stderr
    script = write(guide_tests / "app.py", """
        from kailash.workflow import AsyncWorkflowBuilder
        print(AsyncWorkflowBuilder)
    """)
    done = python("-m", "kflow", str(script), cwd=guide_tests, env={"PYTHONPATH": str(real)})
    assert done.stdout.strip() == "the real one", done.stderr


def test_python_m_kflow_runs_a_script_with_the_guides_imports(tmp_path: Path) -> None:
    script = write(tmp_path / "app.py", GUIDE_IMPORTS + """
import asyncio
import sys

builder = AsyncWorkflowBuilder("script")
builder.add_async_code("double", "result = value * 2")
workflow = builder.build()
result = asyncio.run(AsyncLocalRuntime().execute_workflow_async(workflow, {"value": 21}))
print(sys.argv[1:], result["results"]["double"])
""")
    done = python("-m", "kflow", str(script), "--flag", "x", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['--flag', 'x'] 42"
    # Without kflow's runner, the same script cannot import kailash at all.
    assert python(str(script), cwd=tmp_path).returncode != 0


def test_python_m_kflow_without_a_script_prints_usage(tmp_path: Path) -> None:
    done = python("-m", "kflow", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("usage: python -m kflow SCRIPT")
    assert "kflowc build" in done.stderr
    missing = python("-m", "kflow", "nope.py", cwd=tmp_path)
    assert missing.returncode == 2 and "no script at 'nope.py'" in missing.stderr


def test_kf022_hint_gives_a_command_that_works(kflowc, tmp_path: Path) -> None:
    workflow = write(tmp_path / "workflow.py", """
        from kailash.workflow import AsyncWorkflowBuilder
        builder = AsyncWorkflowBuilder("broken")
        raise RuntimeError("no config")
    """)
    code, _, stderr = kflowc("build", str(workflow))
    assert code == 2 and "KF022" in stderr
    assert "run `python -m kflow workflow.py`" in stderr
    # That command runs the file with the guide's imports and shows the user's traceback.
    done = python("-m", "kflow", "workflow.py", cwd=tmp_path)
    assert "RuntimeError: no config" in done.stderr
    assert "ModuleNotFoundError" not in done.stderr
