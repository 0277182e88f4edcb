"""What can go wrong with a checkpoint store, each as one line that names the store.

    CheckpointError             base: every message starts "checkpoint store <url>: "
    ├── BadStoreURL             the URL names no store kflow knows
    ├── StoreUnavailable        cannot reach or open it (PostgreSQL down, folder missing)
    ├── StoreCorrupt            the SQLite file is not a database, or is damaged
    ├── StoreLocked             another process holds the SQLite file's write lock too long
    ├── RunBusy                 another process is running this run id right now
    ├── InputsMismatch          a resumed run's inputs differ from the stored run's
    └── WorkflowMismatch        the run id belongs to another workflow

URLs in messages have their passwords masked (``u:***@``).
"""

from __future__ import annotations


class CheckpointError(Exception):
    """A checkpoint store failed; the message is one line naming the store."""

    def __init__(self, store: str, problem: str) -> None:
        super().__init__(f"checkpoint store {store}: {problem}")
        self.store = store
        self.problem = problem


class BadStoreURL(CheckpointError):
    pass


class StoreUnavailable(CheckpointError):
    pass


class StoreCorrupt(CheckpointError):
    pass


class StoreLocked(CheckpointError):
    pass


class RunBusy(CheckpointError):
    pass


class InputsMismatch(CheckpointError):
    pass


class WorkflowMismatch(CheckpointError):
    pass
