"""The interface both stores implement.

A `Store` reads anything and deletes old runs; writing a run's outcomes needs its `Claim`,
which only one process at a time can hold for a run id (see docs/durable.md, "Ownership").
Every method raises a CheckpointError subclass, never a driver's own exception.
"""

from __future__ import annotations

import datetime
import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence

from ._model import ChunkRow, GcReport, RunRecord, StoredNode

# The tables of a store, children first (the order gc deletes in).
TABLES = ("chunks", "nodes", "runs")


def owner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def busy_message(run_id: str, record: RunRecord | None) -> str:
    if record is None:
        who = "another process is starting it"
    else:
        since = datetime.datetime.fromtimestamp(record.updated_at, datetime.UTC)
        who = f"{record.owner} holds it (claimed {since:%Y-%m-%d %H:%M:%S} UTC)"
    return (f"run {run_id!r} is running in another process: {who}; wait for it to end, "
            "or pass another --run-id")


class Claim(ABC):
    """Exclusive ownership of one run id, held until `release` (or the process dies)."""

    run_id: str

    @abstractmethod
    async def start(self, workflow: str, inputs_hash: str, *, discard: Iterable[str] = ()) -> None:
        """Record the run as running: a new row, or a resume of the stored one (``starts``
        + 1) whose outcomes of the nodes in `discard` are deleted, in one transaction."""

    @abstractmethod
    async def commit_node(self, node: StoredNode, *, drop_chunks: bool = True) -> None:
        """Store a node's outcome (replacing an older one) and, in the same transaction, drop
        its item chunks (`drop_chunks` False: it has none, and the commit is one statement)."""

    @abstractmethod
    async def write_chunks(self, node_id: str, fingerprint: str, rows: Sequence[ChunkRow]) -> None:
        """Store item outcomes of a parallel_map / batch_processor node; each row atomically."""

    @abstractmethod
    async def load_chunks(self, node_id: str, fingerprint: str) -> list[ChunkRow]:
        """The node's stored chunks at this fingerprint, by first index."""

    @abstractmethod
    async def finish(self, status: str, envelope: str) -> None:
        """Mark the run finished with its envelope; node outputs are dropped (the envelope
        holds them) but each node's row stays for ``runs show``."""

    @abstractmethod
    async def release(self) -> None:
        """Give up ownership (idempotent)."""


class Store(ABC):
    label: str  # the URL with its password masked

    @abstractmethod
    async def open(self) -> None:
        """Connect, and create the schema on first use."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def claim(self, run_id: str) -> Claim:
        """Own `run_id` exclusively, or raise RunBusy naming who owns it."""

    @abstractmethod
    async def get_run(self, run_id: str) -> RunRecord | None: ...

    @abstractmethod
    async def get_nodes(self, run_id: str) -> dict[str, StoredNode]: ...

    @abstractmethod
    async def list_runs(
        self, *, workflow: str | None = None, limit: int | None = None
    ) -> list[RunRecord]:
        """Newest first."""

    @abstractmethod
    async def gc(self, before: float) -> GcReport:
        """Delete every run last claimed or finished before `before` (unix seconds) that no
        process holds, with all its rows."""

    @abstractmethod
    async def row_counts(self) -> dict[str, int]:
        """Rows in each table of `TABLES`."""

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
