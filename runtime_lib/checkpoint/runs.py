"""Housekeeping of a store as library calls: list runs, show one, delete old ones."""

from __future__ import annotations

import re
import time

from ._model import GcReport, RunRecord, StoredNode
from ._session import open_store

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> float:
    """Seconds in ``30s``, ``15m``, ``12h``, ``7d``, ``2w`` or a sum such as ``1d12h``."""
    spec = text.strip().lower()
    parts = _PART.findall(spec)
    if not spec or "".join(number + unit for number, unit in parts) != spec:
        raise ValueError(
            f"bad duration {text!r}: write a number and a unit, like 30s, 15m, 12h, 7d or 2w"
        )
    return sum(float(number) * _UNITS[unit] for number, unit in parts)


async def list_runs(url: str, *, workflow: str | None = None,
                    limit: int | None = None) -> list[RunRecord]:
    async with await open_store(url) as store:
        return await store.list_runs(workflow=workflow, limit=limit)


async def show_run(url: str, run_id: str) -> tuple[RunRecord, dict[str, StoredNode]] | None:
    """The run and its node outcomes, or None if the store has no such run."""
    async with await open_store(url) as store:
        record = await store.get_run(run_id)
        if record is None:
            return None
        return record, await store.get_nodes(run_id)


async def gc_runs(url: str, older_than: str | float, *, now: float | None = None) -> GcReport:
    """Delete the runs last claimed or finished more than `older_than` (seconds, or ``"7d"``) ago,
    with every row they own. Runs a process holds right now are kept (``busy``)."""
    seconds = parse_duration(older_than) if isinstance(older_than, str) else float(older_than)
    async with await open_store(url) as store:
        return await store.gc((time.time() if now is None else now) - seconds)
