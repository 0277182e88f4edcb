"""A process per core for the two costly passes of a big build: code analysis and black.

One pool serves a whole build (`Workers`, a context manager), started only when a pass
has enough items to pay for it. The start method is the platform's own (fork on Linux,
spawn on macOS and Windows), except that a process with other threads running never
forks (a forked child inherits locks other threads held): it uses forkserver, or spawn.
`KFLOW_JOBS=1` keeps everything in the calling process; `KFLOW_JOBS=n` caps the workers.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Past this many items, a pass runs in the pool.
PARALLEL_FROM = 64


def worker_count() -> int:
    configured = os.environ.get("KFLOW_JOBS", "").strip()
    cores = os.cpu_count() or 1
    if configured.isdigit() and int(configured) > 0:
        return min(int(configured), cores)
    return cores


def start_method() -> str:
    default = multiprocessing.get_start_method(allow_none=True) or (
        multiprocessing.get_context().get_start_method()
    )
    if default == "fork" and threading.active_count() > 1:
        methods = multiprocessing.get_all_start_methods()
        return "forkserver" if "forkserver" in methods else "spawn"
    return default


def _worker_started() -> None:
    # A worker lives for one build and makes few reference cycles (syntax trees are
    # trees): collecting costs it more than it frees.
    gc.disable()


class Workers:
    """Worker processes for one build, started on the first pass that needs them."""

    def __init__(self, count: int | None = None) -> None:
        self.count = worker_count() if count is None else count
        self._pool: ProcessPoolExecutor | None = None

    def map(self, fn: Callable[[T], R], items: Iterable[T], *, chunksize: int = 32,
            items_count: int | None = None) -> list[R]:
        """`[fn(item) for item in items]`, in the workers when there is enough work
        (`items_count`: how many units of work the items are, when each is a batch)."""
        items = list(items)
        work = items_count if items_count is not None else len(items)
        if work < PARALLEL_FROM or self.count < 2 or len(items) < 2:
            return [fn(item) for item in items]
        forking = False
        if self._pool is None:
            method = start_method()
            forking = method == "fork"
            self._pool = ProcessPoolExecutor(max_workers=self.count,
                                             mp_context=multiprocessing.get_context(method),
                                             initializer=_worker_started)
        if forking:
            # Children start on the first submit: frozen objects are never scanned by the
            # children's collector, so their pages stay shared (copy-on-write).
            gc.freeze()
        try:
            futures = self._pool.map(fn, items, chunksize=chunksize)
        finally:
            if forking:
                gc.unfreeze()
        return list(futures)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
