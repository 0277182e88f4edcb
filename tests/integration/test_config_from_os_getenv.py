"""Configuration read with os.getenv in workflow.py stays configuration (issue 14.2): the
guide's "Production Deployment" `WorkflowConfig`, built on a machine where DB_HOST points
nowhere, runs against the real PostgreSQL once DB_HOST / DB_NAME say where it is."""

from __future__ import annotations

import textwrap
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from services import run_script

pytestmark = pytest.mark.services

# The guide's example as written, plus what it leaves undefined (process_function, a node
# that uses the database) and the line that builds the workflow.
WORKFLOW = textwrap.dedent(
    '''
    import os
    from dataclasses import dataclass

    from kailash.workflow import AsyncWorkflowBuilder


    @dataclass
    class WorkflowConfig:
        db_host: str = os.getenv("DB_HOST", "localhost")
        db_name: str = os.getenv("DB_NAME", "app")
        api_base_url: str = os.getenv("API_BASE_URL", "https://api.example.com")
        redis_host: str = os.getenv("REDIS_HOST", "localhost")
        max_workers: int = int(os.getenv("MAX_WORKERS", "10"))

    def create_production_workflow(config: WorkflowConfig):
        builder = AsyncWorkflowBuilder("production_pipeline")

        # Configure resources (chainable)
        builder = (builder
            .with_database("db", host=config.db_host, database=config.db_name)
            .with_http_client("api", base_url=config.api_base_url)
            .with_cache("cache", host=config.redis_host))

        # Add nodes (returns node_id)
        builder.add_parallel_map("process", process_function, max_workers=config.max_workers)
        builder.add_async_code("where", "result = await db.fetchval('SELECT current_database()')")

        return builder.build()


    async def process_function(item):
        return item * 2


    workflow = create_production_workflow(WorkflowConfig())
    '''
)


async def test_the_guides_workflow_config_reads_the_host_at_run_time(
        kflowc, tmp_path: Path, pg_dsn: str, monkeypatch) -> None:
    (tmp_path / "workflow.py").write_text(WORKFLOW)
    out = tmp_path / "production.py"
    for var in ("DB_NAME", "API_BASE_URL", "REDIS_HOST", "MAX_WORKERS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DB_HOST", "build-machine.invalid")  # set only where it builds
    code, _, stderr = kflowc("build", str(tmp_path / "workflow.py"), "-o", str(out))
    assert code == 0, stderr
    source = out.read_text()
    assert '{"host": rt.Env("DB_HOST", "localhost"), "database": rt.Env("DB_NAME", "app")}' \
        in source
    assert "build-machine" not in source
    assert ("reads configuration from the environment when it runs: DB_HOST -> db.host "
            "(default 'localhost'), DB_NAME -> db.database (default 'app')") in stderr
    # int(os.getenv("MAX_WORKERS", "10")): the value is converted, so it cannot be read
    # when the module runs: said, at the line that read it.
    assert ("workflow.py:14:28: warning KF112: node 'process': max_workers=10 came from "
            "os.getenv('MAX_WORKERS') converted while building: the module keeps the "
            "build-time value ('10'), and MAX_WORKERS is not read when it runs") in stderr

    dsn = urlsplit(pg_dsn)
    run_env = {"DB_HOST": dsn.hostname or "127.0.0.1", "DB_NAME": dsn.path.lstrip("/"),
               "KFLOW_DB_PORT": str(dsn.port or 5432), "KFLOW_DB_USER": dsn.username or ""}
    if dsn.password:
        run_env["KFLOW_DB_PASSWORD"] = dsn.password
    code, envelope, stderr = await run_script(out, run_env, "--inputs", '{"items": [1, 2]}')
    assert code == 0, stderr
    assert envelope["results"]["where"] == dsn.path.lstrip("/")
    assert envelope["results"]["process"]["results"] == [2, 4]

    # KFLOW_DB_HOST still wins over the workflow's own variable.
    code, envelope, stderr = await run_script(
        out, {**run_env, "DB_HOST": "nowhere.invalid",
              "KFLOW_DB_HOST": dsn.hostname or "127.0.0.1"}, "--inputs", '{"items": []}')
    assert code == 0, stderr
    # And without it, the host is the one the variable names: nowhere, so it fails there.
    code, envelope, _ = await run_script(out, {**run_env, "DB_HOST": "nowhere.invalid"},
                                         "--inputs", '{"items": []}')
    assert code == 1
    assert "nowhere.invalid" in envelope["errors"]["where"]
