"""A store that cannot be used says so in one line naming it: a corrupt or locked SQLite file,
PostgreSQL down or gone mid-run, a missing folder. Nothing stored is lost on the way."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kflow_runtime.checkpoint import (
    StoreCorrupt,
    StoreLocked,
    StoreUnavailable,
    open_run,
    open_store,
)


async def start(url: str, run_id: str = "r1") -> Any:
    return await open_run(url, run_id=run_id, workflow="w", inputs={},
                          fingerprints={"a": "1", "b": "2"}, upstream={"b": ["a"]})


# -- SQLite -----------------------------------------------------------------------------------


async def test_a_file_that_is_not_a_database_is_reported_as_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    path.write_bytes(b"this is a text file, not SQLite\n" * 200)
    with pytest.raises(StoreCorrupt) as caught:
        await start(str(path))
    assert str(caught.value) == (
        f"checkpoint store {path}: the file is not a SQLite database or is damaged (file is "
        "not a database); move it aside and point --checkpoint at a new file"
    )
    assert path.read_bytes().startswith(b"this is a text file")  # left as it was


async def test_a_damaged_database_is_reported_as_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    async with await start(str(path)) as session:
        for n in range(200):
            await session.node_done("a" if n % 2 else "b", output={"blob": "x" * 2000, "n": n})
    data = bytearray(path.read_bytes())
    assert len(data) > 4 * 4096
    data[2 * 4096 : len(data)] = b"\xff" * (len(data) - 2 * 4096)  # pages past the schema
    path.write_bytes(bytes(data))
    with pytest.raises(StoreCorrupt, match=r"the file is not a SQLite database or is damaged "
                       r"\(database disk image is malformed\)"):
        async with await open_store(str(path)) as store:
            await store.get_nodes("r1")


HOLD_WRITE_LOCK = textwrap.dedent("""
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO kflow_meta VALUES ('held', 'by another process')")
    print("holding", flush=True)
    sys.stdin.readline()
""")


@pytest.fixture
def write_lock_holder(tmp_path: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[str]] = []

    def hold(path: Path) -> None:
        script = tmp_path / "hold.py"
        script.write_text(HOLD_WRITE_LOCK)
        proc = subprocess.Popen([sys.executable, str(script), str(path)], text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"

    yield hold
    for proc in procs:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        proc.wait(timeout=60)
        proc.stdout.close()


async def test_a_file_another_process_keeps_write_locked_is_reported_as_locked(
    tmp_path: Path, write_lock_holder: Any
) -> None:
    path = tmp_path / "runs.db"
    async with await start(str(path)) as session:
        await session.node_done("a", output=1)
    write_lock_holder(path)
    url = f"sqlite:///{path}?timeout=0.2"
    with pytest.raises(StoreLocked) as caught:
        await start(url)
    assert str(caught.value) == (
        f"checkpoint store {url}: the database file stayed locked by another process for "
        "0.2 s (database is locked); retry once its write is done, or wait longer with "
        "?timeout=SECONDS"
    )


async def test_the_lock_is_waited_for_within_the_timeout(tmp_path: Path,
                                                         write_lock_holder: Any) -> None:
    path = tmp_path / "runs.db"
    async with await open_store(str(path)) as store:
        # Readers are not blocked by a writer in WAL mode.
        write_lock_holder(path)
        assert await store.list_runs() == []


async def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "runs.db"
    with pytest.raises(StoreUnavailable) as caught:
        await start(str(path))
    assert str(caught.value) == f"checkpoint store {path}: folder {path.parent} does not exist"


# -- PostgreSQL ---------------------------------------------------------------------------------


async def test_postgresql_down_is_one_line_with_the_password_masked(free_port: int) -> None:
    url = f"postgresql://kflow:s3cret@127.0.0.1:{free_port}/runs"
    with pytest.raises(StoreUnavailable) as caught:
        await start(url)
    message = str(caught.value)
    assert message.startswith(
        f"checkpoint store postgresql://kflow:***@127.0.0.1:{free_port}/runs: cannot connect: "
    )
    assert "s3cret" not in message and "\n" not in message
    assert "Connect" in message  # ConnectionRefusedError / ConnectionError, by platform




@pytest.mark.services
async def test_an_unknown_database_is_unavailable(pg_dsn: str) -> None:
    from urllib.parse import urlsplit

    url = urlsplit(pg_dsn)._replace(path="/kflow_no_such_database").geturl()
    with pytest.raises(StoreUnavailable, match="cannot connect: InvalidCatalogNameError: "
                       'database "kflow_no_such_database" does not exist'):
        await start(url)


@pytest.mark.services
async def test_a_run_whose_connection_died_cannot_write_again_and_keeps_what_it_stored(
    pg_store_url: str, pg_conn: Any
) -> None:
    session = await start(pg_store_url)
    try:
        await session.node_done("a", output={"kept": True})
        # The server ends the claim's connection (a restart, a failover, an admin).
        killed = await pg_conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'kflow-checkpoint' AND pid <> pg_backend_pid()"
            " AND datname = current_database()"
        )
        assert killed >= 1
        with pytest.raises(StoreUnavailable) as caught:
            await session.node_done("b", output=2)
        assert str(caught.value).startswith(
            f"checkpoint store {pg_store_url}: run 'r1': cannot store node 'b': ")
    finally:
        await session.close()
    async with await start(pg_store_url) as resumed:
        assert resumed.resumed == ("a",)

