"""The guide's "Database Operations" (golden/database_operations) against real PostgreSQL.

The workflow's SQL names ``users`` and ``user_stats`` unqualified, so every test gets its own
PostgreSQL schema holding both tables, and points the module at it through
``KFLOW_MAIN_DB_SERVER_SETTINGS`` (``search_path``, plus an ``application_name`` that lets
the test find the run's backends in ``pg_stat_activity``). The schema is dropped afterwards.
"""

from __future__ import annotations

import datetime
import json
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from services import run_script, settle

from kflow import AsyncLocalRuntime
from kflow.loader import load_file
from kflow.runtime import load_module

pytestmark = pytest.mark.services

REPO = Path(__file__).resolve().parents[2]
CASE = REPO / "golden" / "database_operations"

# id, name, active, created_at. The workflow selects created_at > '2024-01-01' (strictly).
USERS = [
    (1, "Ada", True, datetime.date(2024, 3, 1)),
    (2, "Grace", False, datetime.date(2024, 6, 15)),
    (3, "Linus", True, datetime.date(2023, 12, 31)),
    (4, "Barbara", True, datetime.date(2024, 1, 1)),
    (5, "Ken", True, datetime.date(2025, 2, 2)),
    (6, "Edsger", False, datetime.date(2022, 5, 5)),
]
ACTIVE_IDS = [u[0] for u in USERS if u[2]]
CREATED_AFTER = [u for u in USERS if u[3] > datetime.date(2024, 1, 1)]
# A stats row whose user does not exist: the workflow must leave it alone.
ORPHAN_STATS_ID = 99


@dataclass
class Schema:
    name: str  # the schema, also the application_name of the run's connections
    environ: dict[str, str]  # KFLOW_MAIN_DB_* pointing the module at it


def main_db_environ(pg_dsn: str, schema: str) -> dict[str, str]:
    parts = urlsplit(pg_dsn)
    return {
        "KFLOW_MAIN_DB_HOST": parts.hostname or "127.0.0.1",
        "KFLOW_MAIN_DB_PORT": str(parts.port or 5432),
        "KFLOW_MAIN_DB_DATABASE": parts.path.lstrip("/") or "test",
        "KFLOW_MAIN_DB_USER": parts.username or "postgres",
        # Trust authentication ignores it, but the module must find it in the environment.
        "KFLOW_MAIN_DB_PASSWORD": parts.password or "not-checked-by-trust-auth",
        "KFLOW_MAIN_DB_SERVER_SETTINGS": json.dumps(
            {"search_path": schema, "application_name": schema}
        ),
    }


@pytest.fixture
async def schema(pg_dsn: str, pg_conn: Any, unique_name: str) -> AsyncIterator[Schema]:
    await pg_conn.execute(f"CREATE SCHEMA {unique_name}")
    try:
        await pg_conn.execute(
            f"""
            CREATE TABLE {unique_name}.users
                (id int PRIMARY KEY, name text, active bool, created_at date);
            CREATE TABLE {unique_name}.user_stats (user_id int, last_seen timestamptz);
            """
        )
        await pg_conn.executemany(f"INSERT INTO {unique_name}.users VALUES ($1, $2, $3, $4)", USERS)
        await pg_conn.executemany(
            f"INSERT INTO {unique_name}.user_stats (user_id) VALUES ($1)",
            [(u[0],) for u in USERS] + [(ORPHAN_STATS_ID,)],
        )
        yield Schema(unique_name, main_db_environ(pg_dsn, unique_name))
    finally:
        await pg_conn.execute(f"DROP SCHEMA IF EXISTS {unique_name} CASCADE")




async def backends(pg_conn: Any, app_name: str) -> int:
    return await pg_conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app_name
    )


async def seen_users(pg_conn: Any, schema: str) -> dict[int, datetime.datetime | None]:
    rows = await pg_conn.fetch(f"SELECT user_id, last_seen FROM {schema}.user_stats")
    return {r["user_id"]: r["last_seen"] for r in rows}


async def assert_stats_updated(pg_conn: Any, schema: str, since: datetime.datetime) -> None:
    seen = await seen_users(pg_conn, schema)
    touched = sorted(uid for uid, last_seen in seen.items() if last_seen is not None)
    assert touched == ACTIVE_IDS
    # NOW() inside the run's transaction: not before the test read the clock.
    assert all(seen[uid] >= since for uid in ACTIVE_IDS)


def expected_rows(json_safe: bool) -> list[dict[str, Any]]:
    return [
        {
            "id": uid,
            "name": name,
            "active": active,
            "created_at": created.isoformat() if json_safe else created,
        }
        for uid, name, active, created in CREATED_AFTER
    ]


def by_id(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: r["id"])


# --------------------------------------------------------------------------- in-process


async def test_guide_example_in_process(
    schema: Schema,
    pg_conn: Any,
    pg_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    open_connections: Callable[[int], int],
) -> None:
    pg_port = urlsplit(pg_dsn).port or 5432
    before = open_connections(pg_port)
    # AsyncLocalRuntime puts os.environ above the builder's values: override through it.
    for var, value in schema.environ.items():
        monkeypatch.setenv(var, value)
    since = await pg_conn.fetchval("SELECT now()")
    workflow, _ = load_file(str(CASE / "workflow.py"))

    envelope = await AsyncLocalRuntime().execute_workflow_async(workflow, {})

    assert envelope["status"] == "success", envelope["errors"]
    assert envelope["errors"] == {} and envelope["skipped"] == []
    rows = envelope["results"]["query_users"]
    assert all(type(row) is dict for row in rows), [type(r) for r in rows]
    assert by_id(rows) == expected_rows(json_safe=False)
    assert envelope["results"]["complex_query"] == {"updated_users": len(ACTIVE_IDS)}
    await assert_stats_updated(pg_conn, schema.name, since)
    # The pool (min_size=5) is closed when the run ends: no backend, no socket left.
    assert await settle(lambda: backends(pg_conn, schema.name), 0) == 0
    assert await settle(lambda: open_connections(pg_port), before) == before


async def test_shipped_golden_module_with_environ(schema: Schema, pg_conn: Any) -> None:
    # The golden file itself, run with `environ=` in place of os.environ.
    module = load_module((CASE / "expected.py").read_text(), "golden-database_operations")
    since = await pg_conn.fetchval("SELECT now()")

    envelope = await module.run({}, environ=schema.environ)

    assert envelope["status"] == "success", envelope["errors"]
    assert by_id(envelope["results"]["query_users"]) == expected_rows(json_safe=False)
    assert envelope["results"]["complex_query"] == {"updated_users": len(ACTIVE_IDS)}
    await assert_stats_updated(pg_conn, schema.name, since)
    assert await settle(lambda: backends(pg_conn, schema.name), 0) == 0


async def test_without_the_password_variable_nothing_connects(schema: Schema, pg_conn: Any) -> None:
    # The shipped module holds no password: without the variable no node may connect.
    module = load_module((CASE / "expected.py").read_text(), "golden-database_operations")
    environ = {k: v for k, v in schema.environ.items() if k != "KFLOW_MAIN_DB_PASSWORD"}

    envelope = await module.run({}, environ=environ)

    assert envelope["status"] == "failed"
    assert set(envelope["errors"]) == {"query_users", "complex_query"}
    for message in envelope["errors"].values():
        assert "resource 'main_db'" in message
        assert "KFLOW_MAIN_DB_PASSWORD" in message and "not set" in message
    assert all(v is None for v in (await seen_users(pg_conn, schema.name)).values())
    assert await backends(pg_conn, schema.name) == 0


# --------------------------------------------------------------------------- as a script




async def test_guide_example_as_a_script(schema: Schema, pg_conn: Any, tmp_path: Path) -> None:
    script = tmp_path / "expected.py"
    shutil.copy(CASE / "expected.py", script)
    since = await pg_conn.fetchval("SELECT now()")

    code, envelope, stderr = await run_script(script, schema.environ, "--inputs", "{}")

    assert code == 0, stderr
    assert envelope is not None and envelope["status"] == "success", envelope
    # Dates printed as ISO text: the envelope is plain JSON.
    assert by_id(envelope["results"]["query_users"]) == expected_rows(json_safe=True)
    assert envelope["results"]["complex_query"] == {"updated_users": len(ACTIVE_IDS)}
    await assert_stats_updated(pg_conn, schema.name, since)
    assert await settle(lambda: backends(pg_conn, schema.name), 0) == 0


async def test_script_reports_a_bad_date_from_postgresql(
    schema: Schema, pg_conn: Any, tmp_path: Path
) -> None:
    # The query_users date travels as text PostgreSQL parses; a value it cannot parse is
    # PostgreSQL's own error, in the envelope, and the other node still runs.
    source = (CASE / "expected.py").read_text().replace('"2024-01-01"', '"not a date"')
    assert '"not a date"' in source
    script = tmp_path / "bad_date.py"
    script.write_text(source)

    code, envelope, stderr = await run_script(script, schema.environ)

    assert code == 1, stderr
    assert envelope is not None
    message = envelope["errors"]["query_users"]
    assert "date" in message and "not a date" in message, message
    assert envelope["results"]["complex_query"] == {"updated_users": len(ACTIVE_IDS)}
    assert await settle(lambda: backends(pg_conn, schema.name), 0) == 0


# --------------------------------------------------------------------------- text parameters


async def test_text_parameters_are_read_as_postgresql_reads_them(pg_pool: Any) -> None:
    # What lets the guide bind "2024-01-01" to a date column, for other types too.
    import asyncpg

    from kflow_runtime.resource_ops import resource_operation

    row = await resource_operation(
        pg_pool,
        "database",
        "fetchrow",
        {
            "query": "SELECT $1::date AS d, $2::timestamptz AS ts, $3::numeric AS n,"
            " $4::int AS i, $5::uuid AS u, $6::int[] AS a, $7::text AS t, $8::bool AS b",
            "params": [
                "2024-01-01",
                "2024-01-01 12:00:00+02",
                "12.50",
                "7",
                "12345678-1234-5678-1234-567812345678",
                "{1,2}",
                "2024-01-01",
                "yes",
            ],
        },
    )
    assert row is not None
    assert row["d"] == datetime.date(2024, 1, 1)
    assert row["ts"] == datetime.datetime(2024, 1, 1, 10, tzinfo=datetime.UTC)
    assert str(row["n"]) == "12.50"
    assert (row["i"], str(row["u"]), row["a"]) == (
        7,
        "12345678-1234-5678-1234-567812345678",
        [1, 2],
    )
    assert (row["t"], row["b"]) == ("2024-01-01", True)
    # A status string for execute, and PostgreSQL's own message for text it cannot read.
    status = await resource_operation(
        pg_pool, "database", "execute", {"query": "SELECT $1::date", "params": ["2024-02-29"]}
    )
    assert status == "SELECT 1"
    with pytest.raises(asyncpg.DataError, match='invalid input syntax for type date: "someday"'):
        await resource_operation(
            pg_pool, "database", "fetchval", {"query": "SELECT $1::date", "params": ["someday"]}
        )
    # An interval is left alone: timedelta cannot hold "1 month".
    with pytest.raises(asyncpg.DataError, match="invalid input for query argument"):
        await resource_operation(
            pg_pool, "database", "fetchval", {"query": "SELECT $1::interval", "params": ["1 mon"]}
        )
