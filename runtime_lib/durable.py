"""Durable runs: what `Run` does with a checkpoint store (docs/durable.md).

Imported only when a run is given a store (`run(inputs, checkpoint=URL)`, `--checkpoint`);
a run without one never loads this module or `kflow_runtime.checkpoint`.

- `open_session`: claim the run id, decide start / resume / finished, say on stderr why
  nodes run again;
- `commit`: a node's outcome, awaited before its dependents start;
- `checkpointed_map` / `checkpointed_batches`: parallel_map and batch_process record item
  outcomes in chunks as they end, and on resume run only the items without one.
"""

from __future__ import annotations

import bisect
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from kflow_runtime.checkpoint import RunSession, open_run
from kflow_runtime.envelope import to_json


def dumps(value: Any) -> str:
    """The envelope's JSON-safe rendering, compact (docs/durable.md: "For the runtime")."""
    return to_json(value, indent=None)


def say(line: str) -> None:
    print(f"kflow: {line}", file=sys.stderr, flush=True)


async def open_session(run: Any, store: Any) -> RunSession:
    """Open `run`'s checkpoint in `store` (a URL or a Store); CheckpointError if refused."""
    table: Mapping[str, tuple[str, tuple[str, ...]]] = run.durable
    session = await open_run(
        store, run_id=run.run_id, workflow=run.workflow, inputs=dict(run.inputs),
        fingerprints={node: fp for node, (fp, _) in table.items()},
        upstream={node: upstream for node, (_, upstream) in table.items()},
        dumps=dumps,
    )
    for line in session.messages:
        say(line)
    return session


async def commit(run: Any, node_id: str) -> None:
    """Store the outcome `run` has just recorded for `node_id`."""
    session: RunSession = run.checkpoint
    attempts = run.attempts.get(node_id, 1)
    duration = run.times.get(node_id, 0.0)
    if node_id in run.errors:
        await session.node_done(node_id, error=run.errors[node_id], attempts=attempts,
                                duration=duration)
    else:
        await session.node_done(node_id, output=run.results.get(node_id),
                                recovered=run.recovered.get(node_id), attempts=attempts,
                                duration=duration)
    if session.notes:  # an output that cannot be restored: said once, as it is stored
        for note in session.notes:
            say(note)
        session.notes.clear()


# --------------------------------------------------------------------------- item chunks


def chunk_size(total: int) -> tuple[int, int]:
    """(items per chunk write, items finished but not stored beyond which workers wait) for
    a map of `total` items: total // 40 items per write (10 to 2,500), and twice that, or a
    twentieth of the map if more (a tenth above 20,000 items, whose writes must keep up with
    items that can finish a million a second; at most 10,000). A worker's run of items is at
    most one chunk, so a kill loses about that share of the map plus a run per worker: the
    issue's 2,000 items killed at 1,000 stay within 2,200 executions (docs/durable.md)."""
    every = min(max(total // 40, 10), 2500)
    share = total // 20 if total <= 20_000 else total // 10
    return every, max(2 * every, min(share, 10_000))


class _Blocks:
    """Hands parallel_map's finished items to the ItemRecorder, as contiguous stretches of
    input indexes.

    The map runs over the items still to do (`pending`, ranges of input indexes, laid end to
    end as positions). Workers finish runs of positions that may be strided (lanes: every
    `stride`-th position of a span), so each position's state is kept in a bytearray (0: not
    finished, 1: finished, 2: handed over) and everything below the lowest unfinished position
    (`mark`) is handed over as it becomes contiguous: C-level slice writes and finds, never a
    Python loop per item. When an item holds the mark for long (a slow one), what finished
    beyond it is swept out once a chunk's worth has gathered, so a kill still loses at most
    about a chunk per worker. A stretch spanning several pending ranges is cut at their edges;
    error records are matched to their stretch by position.
    """

    def __init__(self, recorder: Any, pending: list[range], size: int, sweep_at: int) -> None:
        self.recorder = recorder
        self.starts: list[int] = []  # position of each range's first item in the todo list
        at = 0
        for gap in pending:
            self.starts.append(at)
            at += len(gap)
        self.pending = pending
        self.identity = len(pending) == 1 and pending[0].start == 0
        self.seen = 0  # error records of the map already sorted into `failed`
        self.failed: dict[int, dict[str, Any]] = {}
        self.state = bytearray(size)
        self.mark = 0  # every position below it is handed over
        self.top = 0  # one past the highest finished position
        self.loose = 0  # finished positions not handed over
        self.sweep_at = sweep_at  # loose positions beyond which the mark counts as held

    @property
    def wants_turn(self) -> bool:
        return bool(self.recorder.wants_turn)

    async def drain(self) -> None:
        await self.recorder.drain()

    def index(self, position: int) -> int:
        if self.identity:
            return position
        at = bisect.bisect_right(self.starts, position) - 1
        return self.pending[at].start + position - self.starts[at]

    def block_done(self, run: Any, first: int, size: int, stride: int = 1) -> None:
        """Positions first, first + stride, ... (`size` of them) finished."""
        if not size:
            return
        errors = run.errors
        if len(errors) > self.seen:
            for record in errors[self.seen:]:
                self.failed[record["index"]] = record
            self.seen = len(errors)
        state = self.state
        last = first + (size - 1) * stride
        state[first:last + 1:stride] = b"\x01" * size
        self.loose += size
        if last >= self.top:
            self.top = last + 1
        mark = self.mark
        end = state.find(0, mark)
        if end < 0:
            end = len(state)
        if end > mark:
            self.mark = end
            self._hand_over(run, mark, end)
        if self.loose >= self.sweep_at:
            self._sweep(run)

    def _hand_over(self, run: Any, lo: int, hi: int) -> None:
        """Positions lo .. hi - 1, all finished: hand over those not handed over yet."""
        state = self.state
        while lo < hi:
            swept = state.find(2, lo, hi)
            stop = hi if swept < 0 else swept
            if stop > lo:
                self._add(run, lo, stop)
            if swept < 0:
                return
            lo = state.find(1, swept, hi)
            if lo < 0:
                return

    def _sweep(self, run: Any) -> None:
        """Hand over every finished stretch beyond the mark."""
        state, top = self.state, self.top
        at = self.mark
        while (lo := state.find(1, at, top)) >= 0:
            ends = [x for x in (state.find(0, lo, top), state.find(2, lo, top)) if x >= 0]
            hi = min(ends) if ends else top
            state[lo:hi] = b"\x02" * (hi - lo)
            self._add(run, lo, hi)
            at = hi

    def _add(self, run: Any, first: int, end: int) -> None:
        self.loose -= end - first
        failed = self.failed
        while first < end:
            if self.identity:
                stop = end
            else:
                at = bisect.bisect_right(self.starts, first) - 1
                stop = min(end, self.starts[at] + len(self.pending[at]))
            records = []
            if failed:
                hits = ([p for p in range(first, stop) if p in failed]
                        if stop - first < len(failed)
                        else sorted(p for p in failed if first <= p < stop))
                records = [self._stored(failed.pop(p)) for p in hits]
            self.recorder.add(self.index(first), stop - first, run.results[first:stop], records)
            first = stop

    def _stored(self, record: dict[str, Any]) -> dict[str, Any]:
        return {"index": self.index(record["index"]), "error": record["error"],
                "error_type": record["error_type"],
                **({"where": record["where"]} if record.get("where") else {})}


async def checkpointed_map(
    checkpointing: tuple[RunSession, str],
    process_item: Callable[[Any], Any],
    items: Iterable[Any],
    **options: Any,
) -> dict[str, Any]:
    """parallel_map inside a durable run: items with a stored outcome are not run again;
    the answer (results in input order, errors, statistics) is the one an uninterrupted
    map gives. The input is read whole (a resume needs it by index)."""
    from kflow_runtime.patterns.parallel_map import _PENDING, answer, execute

    session, node_id = checkpointing
    items = items if type(items) is list else list(items)
    total = len(items)
    stored = await session.stored_items(node_id)
    pending = stored.pending(total)
    todo = items if len(pending) == 1 and len(pending[0]) == total else [
        items[i] for gap in pending for i in gap
    ]
    every, max_pending = chunk_size(total)
    recorder = session.item_recorder(node_id, every=every, max_pending=max_pending)
    # Finished but not handed over: normally less than a span of lanes (the parallel_map
    # workers' span: at most a chunk, at least 4 items per worker); twice that means an item
    # holds the mark.
    workers = max(1, min(options["max_workers"], len(todo)))
    blocks = _Blocks(recorder, pending, len(todo), 2 * max(every, 4 * workers))
    # Interrupted (cancelled, a store error), the recorder keeps what it has: the session
    # writes it as it closes. Done, the node's outcome is committed next and holds it all.
    run, chunks, duration = await execute(process_item, todo, recorder=blocks,
                                          max_block=every, **options)
    recorder.discard()
    if not stored.count:
        results, errors = run.outcome()
    else:
        slots: list[Any] = [_PENDING] * total
        for index, value in stored.results():
            slots[index] = value
        for position, value in enumerate(run.results):
            if value is not _PENDING:
                slots[blocks.index(position)] = value
        errors = [{**record, "item": items[record["index"]]} for record in stored.errors()]
        errors += [{**record, "index": blocks.index(record["index"])} for record in run.errors]
        errors.sort(key=lambda record: record["index"])
        results = [value for value in slots if value is not _PENDING]
    return answer(results, errors, total, duration, chunks, options["max_workers"],
                  options["continue_on_error"])


async def checkpointed_batches(
    checkpointing: tuple[RunSession, str],
    items: list[Any],
    batch_size: int,
    run_batches: Callable[
        [list[Any], Callable[[int, int, list[Any]], Awaitable[None]], tuple[list[Any], int, int]],
        Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """batch_process inside a durable run: each batch's results are stored as it ends; a
    resume skips the batches stored (they are a prefix: batches run one after another) and
    counts on from them, in its answer and in a BatchError."""
    session, node_id = checkpointing
    stored = await session.stored_items(node_id)
    pending = stored.pending(len(items))
    done = pending[0].start if pending else len(items)
    recorder = session.item_recorder(node_id, aligned=False, every=batch_size,
                                     max_pending=batch_size)

    async def record(first: int, count: int, results: list[Any]) -> None:
        if recorder.add(first, count, results):
            await recorder.drain()

    before = (stored.batch_results(before=done), done, -(-done // batch_size))
    try:
        return await run_batches(items[done:], record, before)
    finally:
        await recorder.flush()
