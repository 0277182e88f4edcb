"""Durable runs: each node's outcome committed to SQLite or PostgreSQL as it ends, so a run
that died resumes where it stopped (docs/durable.md).

Nothing imports this package unless a store is asked for; it imports its drivers (sqlite3,
asyncpg) only when a store of that kind opens.

- `open_run(url, run_id=..., ...)` -> `RunSession`: what a run calls (restore, commit, finish).
- `open_store(url)` -> `Store`: the rows themselves; `plan_resume` / `decide`: the pure rules.
- `list_runs`, `show_run`, `gc_runs`, `parse_duration`; `runs_main(argv)`: the ``runs`` CLI.
"""

from __future__ import annotations

from ._codec import inputs_hash, plain_dumps
from ._errors import (
    BadStoreURL,
    CheckpointError,
    InputsMismatch,
    RunBusy,
    StoreCorrupt,
    StoreLocked,
    StoreUnavailable,
    WorkflowMismatch,
)
from ._model import ChunkRow, GcReport, RunRecord, StoredNode
from ._session import ItemRecorder, Restored, RunSession, StoredItems, open_run, open_store
from ._store import Claim, Store
from ._url import mask, parse_store_url
from .cli import runs_main
from .resume import Decision, ResumePlan, decide, plan_resume
from .runs import gc_runs, list_runs, parse_duration, show_run

__all__ = [
    # _session
    "ItemRecorder", "Restored", "RunSession", "StoredItems", "open_run", "open_store",
    # resume
    "Decision", "ResumePlan", "decide", "plan_resume",
    # runs, cli
    "gc_runs", "list_runs", "parse_duration", "runs_main", "show_run",
    # _store, _model
    "Claim", "ChunkRow", "GcReport", "RunRecord", "Store", "StoredNode",
    # _codec, _url
    "inputs_hash", "mask", "parse_store_url", "plain_dumps",
    # _errors
    "BadStoreURL", "CheckpointError", "InputsMismatch", "RunBusy", "StoreCorrupt",
    "StoreLocked", "StoreUnavailable", "WorkflowMismatch",
]
