"""The embedded store: one SQLite file in WAL mode, used from one dedicated thread.

stdlib ``sqlite3`` blocks (up to ``?timeout=`` seconds while another process writes), so
every call runs on the store's own thread, which owns the connection, and the event loop only
awaits it. aiosqlite does the same with a dependency; the hand-off here is a queue and
``call_soon_threadsafe``, about half the cost per call of ``run_in_executor`` (measured by
bench/bench_checkpoint.py: the hand-off is a third of a node commit).

Durability (docs/durable.md): ``synchronous=NORMAL`` by default. In WAL mode a commit then
is a write() into the WAL without fsync: it survives the process being killed, and a power
loss may roll back the last commits (never corrupt the file). ``?synchronous=full`` fsyncs
every commit and survives power loss too.
"""

from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from .._version import __version__
from . import _claimlock
from ._errors import (
    CheckpointError,
    RunBusy,
    StoreCorrupt,
    StoreLocked,
    StoreUnavailable,
)
from ._model import RUNNING, ChunkRow, GcReport, RunRecord, StoredNode
from ._store import TABLES, Claim, Store, busy_message, owner_name
from ._url import StoreURL

SCHEMA_VERSION = 1
T = TypeVar("T")

# Tables carry a kflow_ prefix: the file may be one the application also uses.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS kflow_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS kflow_runs (
    run_id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    inputs_hash TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'success', 'failed')),
    started_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL,
    starts INTEGER NOT NULL,
    owner TEXT NOT NULL,
    runtime_version TEXT NOT NULL,
    envelope TEXT
);
CREATE INDEX IF NOT EXISTS kflow_runs_by_update ON kflow_runs (updated_at);
CREATE TABLE IF NOT EXISTS kflow_nodes (
    run_id TEXT NOT NULL REFERENCES kflow_runs (run_id) ON DELETE CASCADE,
    node_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('success', 'failed', 'recovered')),
    output TEXT,
    exact INTEGER NOT NULL,
    error TEXT,
    attempts INTEGER NOT NULL,
    started_at REAL NOT NULL,
    duration REAL NOT NULL,
    PRIMARY KEY (run_id, node_id)
);
CREATE TABLE IF NOT EXISTS kflow_chunks (
    run_id TEXT NOT NULL REFERENCES kflow_runs (run_id) ON DELETE CASCADE,
    node_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    first_index INTEGER NOT NULL,
    item_count INTEGER NOT NULL,
    results TEXT NOT NULL,
    errors TEXT NOT NULL,
    PRIMARY KEY (run_id, node_id, first_index)
);
"""

_RUN_COLUMNS = (
    "r.run_id, r.workflow, r.inputs_hash, r.status, r.started_at, r.updated_at, r.finished_at,"
    " r.starts, r.owner, r.runtime_version"
)
_NODE_COLUMNS = (
    "node_id, fingerprint, status, output, exact, error, attempts, started_at, duration"
)


def translate(exc: sqlite3.Error, label: str, timeout: float) -> CheckpointError:
    """The driver's error as one line that says what to do."""
    text = str(exc) or type(exc).__name__
    low = text.lower()
    if "locked" in low or "busy" in low:
        return StoreLocked(
            label,
            f"the database file stayed locked by another process for {timeout:g} s ({text}); "
            "retry once its write is done, or wait longer with ?timeout=SECONDS",
        )
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        return StoreCorrupt(
            label,
            f"the file is not a SQLite database or is damaged ({text}); move it aside "
            "and point --checkpoint at a new file",
        )
    if "unable to open" in low or "readonly" in low or "disk" in low or "full" in low:
        return StoreUnavailable(label, f"cannot use the database file ({text})")
    return CheckpointError(label, f"{type(exc).__name__}: {text}")


class _Thread:
    """One thread that runs the store's calls in order. A daemon: a store nobody closed must
    not keep the interpreter from exiting (what it had not committed is lost, as on a kill)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="kflow-checkpoint", daemon=True)
        self._thread.start()

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, future, fn, args))
        return await future

    def stop(self) -> None:
        self._jobs.put(None)  # after the calls already queued

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, future, fn, args = job
            try:
                outcome: tuple[Any, BaseException | None] = (fn(*args), None)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
                outcome = (None, exc)
            try:
                loop.call_soon_threadsafe(_settle, future, *outcome)
            except RuntimeError:  # its loop has closed: nobody is waiting any more
                pass


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.cancelled():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


class SqliteStore(Store):
    def __init__(self, url: StoreURL) -> None:
        self.label = url.label
        self.path = url.path
        self.synchronous = url.synchronous
        self.timeout = url.timeout
        self._thread: _Thread | None = None
        self._conn: sqlite3.Connection | None = None  # used on the executor's thread only
        self._locks: _claimlock.ClaimLocks | None = None

    # -- plumbing --------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._thread is None:
            raise CheckpointError(self.label, "the store is closed")
        return await self._thread.call(self._guarded, fn, args)

    def _guarded(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        try:
            return fn(*args)
        except sqlite3.Error as exc:
            raise translate(exc, self.label, self.timeout) from None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")  # the write lock now: waiting happens here, once
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # -- opening ---------------------------------------------------------------

    async def open(self) -> None:
        if not _claimlock.supported():
            raise StoreUnavailable(self.label, "the SQLite store needs POSIX file locks "
                                   "(Linux, macOS); use a postgresql:// store here")
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise StoreUnavailable(self.label, f"folder {folder} does not exist")
        self._thread = _Thread()
        try:
            await self._call(self._connect)
            self._locks = _claimlock.ClaimLocks(self.path + "-claims")
        except OSError as exc:
            await self.close()
            raise StoreUnavailable(self.label, f"cannot open the claims file ({exc})") from None
        except BaseException:
            await self.close()
            raise

    def _connect(self) -> None:
        self._conn = conn = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=True
        )
        conn.execute("PRAGMA journal_mode=WAL").fetchone()
        conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
        conn.execute("PRAGMA foreign_keys=ON")
        with self._transaction():
            # One statement at a time: executescript() would commit the transaction first.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            row = conn.execute("SELECT value FROM kflow_meta WHERE key = 'schema'").fetchone()
            if row is None:
                conn.execute("INSERT INTO kflow_meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) > SCHEMA_VERSION:
                raise CheckpointError(
                    self.label, f"written by a newer kflow-runtime (schema {row[0]}, this one "
                    f"reads {SCHEMA_VERSION}); upgrade kflow-runtime"
                )

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def close(self) -> None:
        if self._thread is None:
            return
        if self._conn is not None:
            await self._call(self._disconnect)
        thread, self._thread = self._thread, None
        thread.stop()
        if self._locks is not None:
            self._locks.close()
            self._locks = None

    # -- ownership -------------------------------------------------------------

    async def claim(self, run_id: str) -> Claim:
        assert self._locks is not None, "open() the store first"
        if not self._locks.acquire(run_id):
            raise RunBusy(self.label, busy_message(run_id, await self.get_run(run_id)))
        return SqliteClaim(self, self._locks, run_id)

    # -- reading ---------------------------------------------------------------

    async def get_run(self, run_id: str) -> RunRecord | None:
        return await self._call(self._get_run, run_id)

    def _get_run(self, run_id: str) -> RunRecord | None:
        assert self._conn is not None
        row = self._conn.execute(
            f"SELECT {_RUN_COLUMNS}, r.envelope,"
            " (SELECT count(*) FROM kflow_nodes n WHERE n.run_id = r.run_id)"
            " FROM kflow_runs r WHERE r.run_id = ?",
            (run_id,),
        ).fetchone()
        return None if row is None else RunRecord(*row)

    async def get_nodes(self, run_id: str) -> dict[str, StoredNode]:
        return await self._call(self._get_nodes, run_id)

    def _get_nodes(self, run_id: str) -> dict[str, StoredNode]:
        assert self._conn is not None
        rows = self._conn.execute(
            f"SELECT {_NODE_COLUMNS} FROM kflow_nodes WHERE run_id = ? ORDER BY started_at",
            (run_id,),
        )
        return {row[0]: _node(row) for row in rows}

    async def list_runs(
        self, *, workflow: str | None = None, limit: int | None = None
    ) -> list[RunRecord]:
        return await self._call(self._list_runs, workflow, limit)

    def _list_runs(self, workflow: str | None, limit: int | None) -> list[RunRecord]:
        assert self._conn is not None
        rows = self._conn.execute(
            f"SELECT {_RUN_COLUMNS}, NULL,"
            " (SELECT count(*) FROM kflow_nodes n WHERE n.run_id = r.run_id)"
            " FROM kflow_runs r WHERE (?1 IS NULL OR r.workflow = ?1)"
            " ORDER BY r.started_at DESC, r.run_id LIMIT ?2",
            (workflow, -1 if limit is None else limit),
        )
        return [RunRecord(*row) for row in rows]

    async def row_counts(self) -> dict[str, int]:
        return await self._call(self._row_counts)

    def _row_counts(self) -> dict[str, int]:
        assert self._conn is not None
        return {t: self._conn.execute(f"SELECT count(*) FROM kflow_{t}").fetchone()[0]
                for t in TABLES}

    # -- housekeeping ----------------------------------------------------------

    async def gc(self, before: float) -> GcReport:
        return await self._call(self._gc, before)

    def _gc(self, before: float) -> GcReport:
        assert self._conn is not None and self._locks is not None
        old = [r for (r,) in self._conn.execute(
            "SELECT run_id FROM kflow_runs WHERE updated_at < ? ORDER BY run_id", (before,))]
        held = [run_id for run_id in old if self._locks.acquire(run_id)]
        try:
            counts = {t: 0 for t in TABLES}
            with self._transaction() as conn:
                for run_id in held:
                    for table in TABLES:  # children first; no reliance on ON DELETE CASCADE
                        cursor = conn.execute(f"DELETE FROM kflow_{table} WHERE run_id = ?",
                                              (run_id,))
                        counts[table] += cursor.rowcount
        finally:
            for run_id in held:
                self._locks.release(run_id)
        kept = set(held)
        busy = tuple(run_id for run_id in old if run_id not in kept)
        return GcReport(counts["runs"], counts["nodes"], counts["chunks"], busy)


class SqliteClaim(Claim):
    def __init__(self, store: SqliteStore, locks: _claimlock.ClaimLocks, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self._locks: _claimlock.ClaimLocks | None = locks

    def _owned_conn(self) -> sqlite3.Connection:
        if self._locks is None:
            raise CheckpointError(self.store.label, f"run {self.run_id!r} was released")
        assert self.store._conn is not None
        return self.store._conn

    def _transaction(self) -> Any:
        self._owned_conn()
        return self.store._transaction()

    async def start(self, workflow: str, inputs_hash: str, *, discard: Iterable[str] = ()) -> None:
        await self.store._call(self._start, workflow, inputs_hash, tuple(discard))

    def _start(self, workflow: str, inputs_hash: str, discard: tuple[str, ...]) -> None:
        now = time.time()
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE kflow_runs SET starts = starts + 1, owner = ?, runtime_version = ?,"
                " updated_at = ? WHERE run_id = ?",
                (owner_name(), __version__, now, self.run_id),
            )
            if cursor.rowcount == 0:
                conn.execute(
                    "INSERT INTO kflow_runs VALUES (?, ?, ?, ?, ?, ?, NULL, 1, ?, ?, NULL)",
                    (self.run_id, workflow, inputs_hash, RUNNING, now, now, owner_name(),
                     __version__),
                )
            for table in ("chunks", "nodes"):
                conn.executemany(
                    f"DELETE FROM kflow_{table} WHERE run_id = ? AND node_id = ?",
                    [(self.run_id, node_id) for node_id in discard],
                )

    async def commit_node(self, node: StoredNode, *, drop_chunks: bool = True) -> None:
        await self.store._call(self._commit_node, node, drop_chunks)

    def _commit_node(self, node: StoredNode, drop_chunks: bool) -> None:
        values = (self.run_id, node.node_id, node.fingerprint, node.status, node.output,
                  int(node.exact), node.error, node.attempts, node.started_at, node.duration)
        insert = "INSERT OR REPLACE INTO kflow_nodes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        if not drop_chunks:
            # One autocommitted statement: one call into sqlite3 (see _write_chunks).
            self._owned_conn().execute(insert, values)
            return
        with self._transaction() as conn:
            conn.execute(insert, values)
            conn.execute("DELETE FROM kflow_chunks WHERE run_id = ? AND node_id = ?",
                         (self.run_id, node.node_id))

    async def write_chunks(self, node_id: str, fingerprint: str, rows: Sequence[ChunkRow]) -> None:
        await self.store._call(self._write_chunks, node_id, fingerprint, rows)

    def _write_chunks(self, node_id: str, fingerprint: str, rows: Sequence[ChunkRow]) -> None:
        # One autocommitted statement per row (a row stands on its own; no BEGIN, no COMMIT):
        # while a map keeps the event loop busy, this thread waits up to the interpreter's
        # switch interval (5 ms) for the GIL after every call into sqlite3, so fewer calls
        # is what makes a chunk write fast then (bench/bench_checkpoint.py).
        conn = self._owned_conn()
        for row in rows:
            conn.execute(
                "INSERT OR REPLACE INTO kflow_chunks VALUES (?, ?, ?, ?, ?, ?, ?)",
                (self.run_id, node_id, fingerprint, row.first, row.count, row.results,
                 row.errors),
            )

    async def load_chunks(self, node_id: str, fingerprint: str) -> list[ChunkRow]:
        return await self.store._call(self._load_chunks, node_id, fingerprint)

    def _load_chunks(self, node_id: str, fingerprint: str) -> list[ChunkRow]:
        assert self.store._conn is not None
        rows = self.store._conn.execute(
            "SELECT first_index, item_count, results, errors FROM kflow_chunks"
            " WHERE run_id = ? AND node_id = ? AND fingerprint = ? ORDER BY first_index",
            (self.run_id, node_id, fingerprint),
        )
        return [ChunkRow(*row) for row in rows]

    async def finish(self, status: str, envelope: str) -> None:
        await self.store._call(self._finish, status, envelope)

    def _finish(self, status: str, envelope: str) -> None:
        now = time.time()
        with self._transaction() as conn:
            conn.execute(
                "UPDATE kflow_runs SET status = ?, finished_at = ?, updated_at = ?, envelope = ?"
                " WHERE run_id = ?",
                (status, now, now, envelope, self.run_id),
            )
            conn.execute("UPDATE kflow_nodes SET output = NULL WHERE run_id = ?", (self.run_id,))
            conn.execute("DELETE FROM kflow_chunks WHERE run_id = ?", (self.run_id,))

    async def release(self) -> None:
        locks, self._locks = self._locks, None
        if locks is not None:
            locks.release(self.run_id)


def _node(row: tuple[Any, ...]) -> StoredNode:
    node_id, fingerprint, status, output, exact, error, attempts, started_at, duration = row
    return StoredNode(node_id, fingerprint, status, output, bool(exact), error, attempts,
                      started_at, duration)

