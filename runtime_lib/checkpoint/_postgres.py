"""The shared store: PostgreSQL through asyncpg, in a schema of its own (``kflow`` by default,
``?schema=NAME`` in the URL), created on first use.

A claim is a session-level advisory lock held on one connection for the run's duration; the
run's writes go through that same connection, so a run whose connection broke (and with it the
lock) cannot write another outcome: its next commit fails instead. When a process dies its
connection closes and the server drops the lock; when a machine vanishes without closing it,
TCP keepalives (set below to about a minute) let the server notice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .._version import __version__
from ._errors import CheckpointError, RunBusy, StoreUnavailable
from ._model import RUNNING, ChunkRow, GcReport, RunRecord, StoredNode
from ._store import TABLES, Claim, Store, busy_message, owner_name
from ._url import StoreURL

SCHEMA_VERSION = 1
_CONNECT_TIMEOUT = 10.0
# Keepalives: the server notices a peer gone without closing (power off, cable) in ~1 minute
# and drops that connection's advisory locks. Set per connection; ignored on Unix sockets.
_SERVER_SETTINGS = {
    "tcp_keepalives_idle": "30",
    "tcp_keepalives_interval": "10",
    "tcp_keepalives_count": "3",
}

_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.meta (
    key text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.runs (
    run_id text PRIMARY KEY,
    workflow text NOT NULL,
    inputs_hash text NOT NULL,
    status text NOT NULL CHECK (status IN ('running', 'success', 'failed')),
    started_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    finished_at double precision,
    starts integer NOT NULL,
    owner text NOT NULL,
    runtime_version text NOT NULL,
    envelope text
);
CREATE INDEX IF NOT EXISTS runs_by_update ON {s}.runs (updated_at);
CREATE TABLE IF NOT EXISTS {s}.nodes (
    run_id text NOT NULL REFERENCES {s}.runs (run_id) ON DELETE CASCADE,
    node_id text NOT NULL,
    fingerprint text NOT NULL,
    status text NOT NULL CHECK (status IN ('success', 'failed', 'recovered')),
    output text,
    exact boolean NOT NULL,
    error text,
    attempts integer NOT NULL,
    started_at double precision NOT NULL,
    duration double precision NOT NULL,
    PRIMARY KEY (run_id, node_id)
);
CREATE TABLE IF NOT EXISTS {s}.chunks (
    run_id text NOT NULL REFERENCES {s}.runs (run_id) ON DELETE CASCADE,
    node_id text NOT NULL,
    fingerprint text NOT NULL,
    first_index bigint NOT NULL,
    item_count integer NOT NULL,
    results text NOT NULL,
    errors text NOT NULL,
    PRIMARY KEY (run_id, node_id, first_index)
);
INSERT INTO {s}.meta VALUES ('schema', '{version}') ON CONFLICT (key) DO NOTHING;
"""

_RUN_COLUMNS = (
    "r.run_id, r.workflow, r.inputs_hash, r.status, r.started_at, r.updated_at, r.finished_at,"
    " r.starts, r.owner, r.runtime_version"
)
_NODE_COLUMNS = (
    "node_id, fingerprint, status, output, exact, error, attempts, started_at, duration"
)
# Advisory lock keys: 64-bit hashes computed by the server, so gc's SQL and claims agree.
_KEY = "hashtextextended($1, 0)"


class PostgresStore(Store):
    def __init__(self, url: StoreURL) -> None:
        self.label = url.label
        self.dsn = url.dsn
        self.schema = url.schema
        self._s = f'"{url.schema}"'  # validated as a plain identifier by parse_store_url
        self._pool: Any = None

    def lock_key(self, run_id: str) -> str:
        return f"kflow:{self.schema}:{run_id}"

    @asynccontextmanager
    async def guard(self, doing: str) -> AsyncIterator[None]:
        """Turn the driver's errors into one-line CheckpointErrors."""
        import asyncpg

        try:
            yield
        except CheckpointError:
            raise
        except (OSError, asyncpg.InterfaceError,  # OSError covers TimeoutError
                asyncpg.InternalClientError,  # e.g. the server's FATAL arrived mid-statement
                asyncpg.PostgresConnectionError, asyncpg.OperatorInterventionError,
                asyncpg.InvalidCatalogNameError,
                asyncpg.InvalidAuthorizationSpecificationError) as exc:
            raise StoreUnavailable(self.label, f"{doing}: {_describe(exc)}") from None
        except asyncpg.PostgresError as exc:
            raise CheckpointError(self.label, f"{doing}: {_describe(exc)}") from None

    # -- opening ---------------------------------------------------------------

    async def open(self) -> None:
        try:
            import asyncpg
        except ImportError:
            raise CheckpointError(
                self.label, "needs asyncpg: pip install 'kflow-runtime[postgres]'"
            ) from None
        options = dict(parse_qsl(urlsplit(self.dsn).query))
        connect: dict[str, Any] = {"server_settings": dict(_SERVER_SETTINGS)}
        if "connect_timeout" not in options:
            connect["timeout"] = _CONNECT_TIMEOUT
        if "application_name" not in options:
            connect["server_settings"]["application_name"] = "kflow-checkpoint"
        async with self.guard("cannot connect"):
            self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=4, **connect)
        try:
            async with self.guard("cannot create its schema"):
                await self._create_schema()
        except BaseException:
            await self.close()
            raise

    async def _create_schema(self) -> None:
        async with self._pool.acquire() as conn:
            exists = await conn.fetchval("SELECT to_regclass($1)", f"{self._s}.chunks")
            if exists is None:
                async with conn.transaction():
                    # Two processes opening a new store at once: one creates, the other waits.
                    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                                       f"kflow-schema:{self.schema}")
                    await conn.execute(_SCHEMA.format(s=self._s, version=SCHEMA_VERSION))
                    await self._prefer_lz4(conn)
            version = await conn.fetchval(f"SELECT value FROM {self._s}.meta WHERE key = 'schema'")
        if version is not None and int(version) > SCHEMA_VERSION:
            raise CheckpointError(
                self.label, f"written by a newer kflow-runtime (schema {version}, this one reads "
                f"{SCHEMA_VERSION}); upgrade kflow-runtime"
            )

    async def _prefer_lz4(self, conn: Any) -> None:
        """Compress large JSON with lz4 rather than pglz: a 600 KB chunk of item results is
        written in a quarter of the time (bench/bench_checkpoint.py). PostgreSQL 14+ built
        with lz4 only; elsewhere the default compression stays."""
        import asyncpg

        try:
            async with conn.transaction():  # a savepoint: a refusal leaves the schema intact
                for table, column in (("nodes", "output"), ("chunks", "results"),
                                      ("runs", "envelope")):
                    await conn.execute(f"ALTER TABLE {self._s}.{table} ALTER COLUMN {column}"
                                       " SET COMPRESSION lz4")
        except asyncpg.PostgresError:
            pass

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), 10)
            except Exception:  # noqa: BLE001 - a broken server: drop the sockets instead
                pool.terminate()

    # -- ownership -------------------------------------------------------------

    async def claim(self, run_id: str) -> Claim:
        async with self.guard(f"cannot claim run {run_id!r}"):
            conn = await self._pool.acquire()
            try:
                got = await conn.fetchval(f"SELECT pg_try_advisory_lock({_KEY})",
                                          self.lock_key(run_id))
            except BaseException:
                await self._pool.release(conn)
                raise
        if not got:
            await self._pool.release(conn)
            raise RunBusy(self.label, busy_message(run_id, await self.get_run(run_id)))
        return PostgresClaim(self, conn, run_id)

    # -- reading ---------------------------------------------------------------

    async def get_run(self, run_id: str) -> RunRecord | None:
        async with self.guard("cannot read runs"):
            row = await self._pool.fetchrow(
                f"SELECT {_RUN_COLUMNS}, r.envelope,"
                f" (SELECT count(*) FROM {self._s}.nodes n WHERE n.run_id = r.run_id)"
                f" FROM {self._s}.runs r WHERE r.run_id = $1",
                run_id,
            )
        return None if row is None else RunRecord(*row)

    async def get_nodes(self, run_id: str) -> dict[str, StoredNode]:
        async with self.guard("cannot read node outcomes"):
            rows = await self._pool.fetch(
                f"SELECT {_NODE_COLUMNS} FROM {self._s}.nodes WHERE run_id = $1"
                " ORDER BY started_at",
                run_id,
            )
        return {row[0]: StoredNode(*row) for row in rows}

    async def list_runs(
        self, *, workflow: str | None = None, limit: int | None = None
    ) -> list[RunRecord]:
        async with self.guard("cannot list runs"):
            rows = await self._pool.fetch(
                f"SELECT {_RUN_COLUMNS}, NULL,"
                f" (SELECT count(*) FROM {self._s}.nodes n WHERE n.run_id = r.run_id)"
                f" FROM {self._s}.runs r WHERE ($1::text IS NULL OR r.workflow = $1)"
                " ORDER BY r.started_at DESC, r.run_id LIMIT $2",
                workflow, limit,
            )
        return [RunRecord(*row) for row in rows]

    async def row_counts(self) -> dict[str, int]:
        async with self.guard("cannot count rows"):
            return {t: await self._pool.fetchval(f"SELECT count(*) FROM {self._s}.{t}")
                    for t in TABLES}

    # -- housekeeping ----------------------------------------------------------

    async def gc(self, before: float) -> GcReport:
        async with self.guard("cannot delete old runs"), self._pool.acquire() as conn:
            async with conn.transaction():
                # The try-lock holds until commit: nobody claims a run while it is deleted,
                # and a run some process holds is kept.
                rows = await conn.fetch(
                    "SELECT run_id, pg_try_advisory_xact_lock(hashtextextended($2 || run_id, 0))"
                    f" FROM (SELECT run_id FROM {self._s}.runs WHERE updated_at < $1"
                    " ORDER BY run_id) AS old",
                    before, f"kflow:{self.schema}:",
                )
                held = [r["run_id"] for r in rows if r[1]]
                counts = {}
                for table in TABLES:  # children first; no reliance on ON DELETE CASCADE
                    status = await conn.execute(
                        f"DELETE FROM {self._s}.{table} WHERE run_id = ANY($1::text[])", held
                    )
                    counts[table] = int(status.split()[-1])
        busy = tuple(r["run_id"] for r in rows if not r[1])
        return GcReport(counts["runs"], counts["nodes"], counts["chunks"], busy)


class PostgresClaim(Claim):
    def __init__(self, store: PostgresStore, conn: Any, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self._conn: Any = conn
        self._s = store._s
        self._serial = asyncio.Lock()  # one connection: one statement at a time, in order

    @asynccontextmanager
    async def _using(self, doing: str) -> AsyncIterator[Any]:
        if self._conn is None:
            raise CheckpointError(self.store.label, f"run {self.run_id!r} was released")
        async with self._serial, self.store.guard(f"run {self.run_id!r}: {doing}"):
            yield self._conn

    async def start(self, workflow: str, inputs_hash: str, *, discard: Iterable[str] = ()) -> None:
        now = time.time()
        async with self._using("cannot start") as conn, conn.transaction():
            status = await conn.execute(
                f"UPDATE {self._s}.runs SET starts = starts + 1, owner = $2,"
                " runtime_version = $3, updated_at = $4 WHERE run_id = $1",
                self.run_id, owner_name(), __version__, now,
            )
            if status == "UPDATE 0":
                await conn.execute(
                    f"INSERT INTO {self._s}.runs VALUES"
                    " ($1, $2, $3, $4, $5, $5, NULL, 1, $6, $7, NULL)",
                    self.run_id, workflow, inputs_hash, RUNNING, now, owner_name(), __version__,
                )
            gone = list(discard)
            if gone:
                for table in ("chunks", "nodes"):
                    await conn.execute(
                        f"DELETE FROM {self._s}.{table} WHERE run_id = $1"
                        " AND node_id = ANY($2::text[])",
                        self.run_id, gone,
                    )

    async def commit_node(self, node: StoredNode, *, drop_chunks: bool = True) -> None:
        # One statement, one round trip, one transaction.
        gone = (f", gone AS (DELETE FROM {self._s}.chunks WHERE run_id = $1 AND node_id = $2)"
                if drop_chunks else "")
        async with self._using(f"cannot store node {node.node_id!r}") as conn:
            await conn.execute(
                f"WITH node AS (INSERT INTO {self._s}.nodes VALUES"
                " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                " ON CONFLICT (run_id, node_id) DO UPDATE SET fingerprint = EXCLUDED.fingerprint,"
                " status = EXCLUDED.status, output = EXCLUDED.output, exact = EXCLUDED.exact,"
                " error = EXCLUDED.error, attempts = EXCLUDED.attempts,"
                " started_at = EXCLUDED.started_at, duration = EXCLUDED.duration"
                f" RETURNING 1){gone} SELECT count(*) FROM node",
                self.run_id, node.node_id, node.fingerprint, node.status, node.output,
                node.exact, node.error, node.attempts, node.started_at, node.duration,
            )

    async def write_chunks(self, node_id: str, fingerprint: str, rows: Sequence[ChunkRow]) -> None:
        # Committed without waiting for the WAL flush (synchronous_commit off for this one
        # transaction: set_config(..., true) is SET LOCAL). A client kill loses none of it; a
        # server crash may lose the last moment of items, which then run again. Taking the
        # fsync out is what lets chunks keep pace with fast items; node outcomes keep the
        # server's setting (docs/durable.md, Durability). Scalar parameters through
        # executemany (one round trip, one transaction): array parameters would cost a type
        # introspection of ~20 ms on the connection's first chunk.
        async with self._using(f"cannot store items of node {node_id!r}") as conn:
            await conn.executemany(
                "WITH lazy AS (SELECT set_config('synchronous_commit', 'off', true))"
                f" INSERT INTO {self._s}.chunks SELECT $1, $2, $3, $4, $5, $6, $7 FROM lazy"
                " ON CONFLICT (run_id, node_id, first_index) DO UPDATE SET"
                " fingerprint = EXCLUDED.fingerprint, item_count = EXCLUDED.item_count,"
                " results = EXCLUDED.results, errors = EXCLUDED.errors",
                [(self.run_id, node_id, fingerprint, row.first, row.count, row.results,
                  row.errors) for row in rows],
            )

    async def load_chunks(self, node_id: str, fingerprint: str) -> list[ChunkRow]:
        async with self._using(f"cannot read items of node {node_id!r}") as conn:
            rows = await conn.fetch(
                "SELECT first_index, item_count, results, errors"
                f" FROM {self._s}.chunks WHERE run_id = $1 AND node_id = $2"
                " AND fingerprint = $3 ORDER BY first_index",
                self.run_id, node_id, fingerprint,
            )
        return [ChunkRow(*row) for row in rows]

    async def finish(self, status: str, envelope: str) -> None:
        async with self._using("cannot store the envelope") as conn:
            await conn.execute(
                f"WITH n AS (UPDATE {self._s}.nodes SET output = NULL WHERE run_id = $1),"
                f" c AS (DELETE FROM {self._s}.chunks WHERE run_id = $1)"
                f" UPDATE {self._s}.runs SET status = $2, finished_at = $3, updated_at = $3,"
                " envelope = $4 WHERE run_id = $1",
                self.run_id, status, time.time(), envelope,
            )

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        async with self._serial:
            try:
                await conn.execute(f"SELECT pg_advisory_unlock({_KEY})",
                                   self.store.lock_key(self.run_id))
            except Exception:  # noqa: BLE001 - a broken connection took its lock with it
                pass
            finally:
                pool = self.store._pool
                if pool is not None:
                    try:
                        await pool.release(conn)
                    except Exception:  # noqa: BLE001
                        conn.terminate()
                else:
                    conn.terminate()


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
