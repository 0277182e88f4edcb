"""What a store keeps: one row per run, one per node outcome, one per chunk of map items."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

RUNNING, SUCCESS, FAILED = "running", "success", "failed"
RECOVERED = "recovered"  # a node whose error handler gave it an output


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    workflow: str
    inputs_hash: str
    status: str  # running | success | failed
    started_at: float  # unix seconds, when the run was first started
    updated_at: float  # the last claim (start or resume) or the finish
    finished_at: float | None
    starts: int  # 1, plus one per resume
    owner: str  # "host:pid" of the process that last claimed it
    runtime_version: str  # kflow-runtime that last claimed it
    envelope: str | None  # the final envelope as JSON text, once finished
    stored_nodes: int = 0  # node outcome rows

    @property
    def finished(self) -> bool:
        return self.status != RUNNING

    @property
    def duration(self) -> float | None:
        """Seconds from the first start to the finish; None while running."""
        return None if self.finished_at is None else self.finished_at - self.started_at


@dataclass(frozen=True)
class StoredNode:
    """A node's outcome, committed when the node ended."""

    node_id: str
    fingerprint: str
    status: str  # success | failed | recovered
    output: str | None  # JSON text; None when failed, or after the run finished
    exact: bool  # the output round-trips through JSON; if not, the node re-runs on resume
    error: str | None  # failed: the error; recovered: the error the handler recovered from
    attempts: int
    started_at: float  # unix seconds
    duration: float  # seconds, as execution_times reports it

    def value(self) -> Any:
        return None if self.output is None else json.loads(self.output)


@dataclass(frozen=True)
class ChunkRow:
    """Outcomes of the items ``first .. first + count - 1`` of a parallel_map or
    batch_processor node: ``results`` and ``errors`` as JSON array text."""

    first: int
    count: int
    results: str
    errors: str


@dataclass(frozen=True)
class GcReport:
    runs: int  # runs deleted
    nodes: int  # node outcome rows deleted with them
    chunks: int  # item chunk rows deleted with them
    busy: tuple[str, ...] = ()  # old enough, but a process holds them: kept
