"""os.getenv in workflow.py (issue 14.2), without services: what the IR and the module
hold, secrets read the same way, and what the runtime resolves."""

from __future__ import annotations

import pytest

from kflow.ir import EnvRef, Workflow
from kflow.loader import load_workflow
from kflow_runtime.resources import Database, Env

WORKFLOW = '''
import os
from kailash.workflow import AsyncWorkflowBuilder
builder = AsyncWorkflowBuilder("cfg")
builder.with_database("db", host=os.environ.get("PGHOST_X", "localhost"),
                      password=os.getenv("PG_PASSWORD_X", "dev-only"),
                      port=int(os.getenv("PG_PORT_X", "5432")))
builder.add_async_code("a", "result = await db.fetchval('SELECT 1')")
workflow = builder.build()
'''


def test_settings_read_with_getenv_stay_read_from_the_environment(
        write_workflow, monkeypatch, kflowc, tmp_path):
    for var in ("PGHOST_X", "PG_PASSWORD_X", "PG_PORT_X"):
        monkeypatch.delenv(var, raising=False)
    path = write_workflow(WORKFLOW)
    workflow = load_workflow(path)
    (db,) = workflow.resources
    assert db.settings["host"] == EnvRef("PGHOST_X", "localhost")
    assert db.settings["port"] == 5432
    # A credential read with getenv is a secret read from that same variable, no default.
    assert db.settings["password"].env == "PG_PASSWORD_X"
    assert Workflow.from_json(workflow.to_json()) == workflow  # the IR file keeps it

    code, _, stderr = kflowc("build", path, "-o", str(tmp_path / "out.py"))
    assert code == 0, stderr
    source = (tmp_path / "out.py").read_text()
    assert 'rt.Env("PGHOST_X", "localhost")' in source and 'rt.Secret("PG_PASSWORD_X")' in source
    assert "dev-only" not in source
    assert "reads secrets from the environment: PG_PASSWORD_X" in stderr
    assert "warning KF112: resource 'db' setting 'port' came from os.getenv('PG_PORT_X')" \
        in stderr
    assert "hint: set KFLOW_DB_PORT when the module runs to change it there" in stderr
    import os

    assert os.getenv.__module__ == "os"  # the loader put os.getenv back


@pytest.mark.parametrize("environ, host", [
    ({}, "localhost"),
    ({"PGHOST_X": "db.internal"}, "db.internal"),
    ({"PGHOST_X": "db.internal", "KFLOW_DB_HOST": "override"}, "override"),
])
def test_the_runtime_reads_the_variable_then_the_default(environ, host):
    spec = Database("db", {"host": Env("PGHOST_X", "localhost")})
    assert spec.resolved_settings(environ)["host"] == host
