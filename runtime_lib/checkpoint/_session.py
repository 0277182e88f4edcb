"""One run's checkpoint, as the runtime uses it: open, restore, commit, finish.

    session = await open_run(url, run_id=..., workflow=..., inputs=..., fingerprints=...,
                             upstream=..., dumps=...)
    async with session:
        if session.finished is not None: return session.finished   # idempotency key
        ... per node: session.restored(node_id), else run it and await session.node_done(...)
        ... per parallel_map: await session.stored_items(node_id), session.item_recorder(...)
        await session.finish(envelope)
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._codec import Dumps, encode, inputs_hash, plain_dumps, render, round_trips
from ._errors import CheckpointError
from ._model import FAILED, RECOVERED, SUCCESS, ChunkRow, StoredNode
from ._store import Claim, Store
from ._url import parse_store_url
from .resume import FINISHED, RESUME, START, Decision, decide

logger = logging.getLogger("kflow.checkpoint")

# A map's item outcomes are committed every ITEMS_PER_COMMIT items or COMMIT_INTERVAL seconds,
# whichever comes first, with one write in flight (items finishing meanwhile join the next).
# What a kill can lose is about that much work; bench/bench_checkpoint.py measured the cost.
ITEMS_PER_COMMIT = 100
COMMIT_INTERVAL = 1.0
# Items finished but not yet stored beyond which workers wait (ItemRecorder.add returns True):
# only a store much slower than the items gets there, and then it bounds memory and loss.
MAX_PENDING = 10_000


async def open_store(url: str) -> Store:
    """The store a URL names, connected and with its schema in place."""
    parsed = parse_store_url(url)
    store: Store
    if parsed.kind == "sqlite":
        from ._sqlite import SqliteStore

        store = SqliteStore(parsed)
    else:
        from ._postgres import PostgresStore

        store = PostgresStore(parsed)
    await store.open()
    return store


@dataclass(frozen=True)
class Restored:
    """A stored node outcome, ready to put back into the run."""

    status: str  # success | failed | recovered
    output: Any  # None when failed
    error: str | None  # failed: the error; recovered: what the error handler recovered from
    attempts: int
    duration: float


async def open_run(
    checkpoint: str | Store,
    *,
    run_id: str,
    workflow: str,
    inputs: Any,
    fingerprints: Mapping[str, str],
    upstream: Mapping[str, Iterable[str]],
    dumps: Dumps | None = None,
    retry_failed: bool = False,
) -> RunSession:
    """Claim `run_id` in the store and decide what to do: start it, resume it, or hand back
    the envelope it finished with. Raises a CheckpointError (RunBusy, InputsMismatch, ...)
    whose message is one line for stderr. A store given as an object is not closed after."""
    owns = isinstance(checkpoint, str)
    store = await open_store(checkpoint) if isinstance(checkpoint, str) else checkpoint
    claim: Claim | None = None
    try:
        claim = await store.claim(run_id)
        record = await store.get_run(run_id)
        stored = await store.get_nodes(run_id) if record is not None and not record.finished else {}
        digest = inputs_hash(inputs, dumps)
        decision = decide(record, stored, store=store.label, workflow=workflow,
                          inputs_hash=digest, fingerprints=fingerprints, upstream=upstream,
                          retry_failed=retry_failed)
        if decision.action == FINISHED:
            await claim.release()
            claim = None
        else:
            await claim.start(workflow, digest, discard=decision.plan.discard)
    except BaseException:
        if claim is not None:
            await claim.release()
        if owns:
            await store.close()
        raise
    starts = 1 if record is None else record.starts + (decision.action == RESUME)
    return RunSession(store, claim, decision, run_id=run_id, fingerprints=fingerprints,
                      dumps=dumps, owns_store=owns, starts=starts)


class RunSession:
    def __init__(
        self,
        store: Store,
        claim: Claim | None,
        decision: Decision,
        *,
        run_id: str,
        fingerprints: Mapping[str, str],
        dumps: Dumps | None,
        owns_store: bool,
        starts: int,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.action = decision.action  # "start" | "resume" | "finished"
        self.plan = decision.plan
        self.starts = starts
        self.notes: list[str] = []  # said once during the run: outputs that cannot be restored
        self._claim = claim
        self._decision = decision
        self._fingerprints = fingerprints
        self._dumps = dumps or plain_dumps
        self._owns_store = owns_store
        self._recorders: list[ItemRecorder] = []
        self._mapped: set[str] = set()  # nodes that stored item chunks in this process

    # -- what was decided ------------------------------------------------------

    @property
    def finished(self) -> dict[str, Any] | None:
        """The stored envelope of a run that had already finished; None otherwise."""
        if self.action != FINISHED or self._decision.envelope is None:
            return None
        return json.loads(self._decision.envelope)

    @property
    def resumed(self) -> tuple[str, ...]:
        """Nodes restored from the store, in workflow order (the envelope's ``resumed``)."""
        return self.plan.resumed

    @property
    def messages(self) -> tuple[str, ...]:
        """What to print on stderr before the run: what resumes, what runs again and why."""
        label = self.store.label
        if self.action == FINISHED:
            return (f"run {self.run_id!r} already finished in {label}; "
                    "returning its stored envelope, nothing runs",)
        if self.action == START:
            return ()
        head = (f"resuming run {self.run_id!r} from {label} (start {self.starts}): "
                f"{len(self.plan.restore)} of {len(self._fingerprints)} nodes restored")
        return (head, *self.plan.messages)

    def restored(self, node_id: str) -> Restored | None:
        """The stored outcome to use instead of running `node_id`, or None: run it."""
        node = self.plan.restore.get(node_id)
        if node is None:
            return None
        return Restored(node.status, node.value(), node.error, node.attempts, node.duration)

    # -- writing ---------------------------------------------------------------

    def _owned(self) -> Claim:
        if self._claim is None:
            raise CheckpointError(self.store.label, f"run {self.run_id!r} is not open for writing")
        return self._claim

    async def node_done(
        self,
        node_id: str,
        *,
        output: Any = None,
        error: str | None = None,
        recovered: str | None = None,
        attempts: int = 1,
        duration: float = 0.0,
        output_json: str | None = None,
    ) -> None:
        """Commit a node's outcome as it ends; returns once it is stored.

        `error` set: the node failed. `recovered` set: an error handler gave it `output`.
        `output_json` is `output` already rendered (else the session's `dumps` renders it).
        """
        claim = self._owned()
        if error is not None:
            status, text, exact = FAILED, None, True
        else:
            status = RECOVERED if recovered is not None else SUCCESS
            if output_json is not None:
                text, exact = output_json, round_trips(output_json, output)
            else:
                text, exact = encode(output, self._dumps)
            if not exact:
                self.notes.append(
                    f"node {node_id!r}: its output ({type(output).__name__}) does not round-trip "
                    "through JSON, so a resume runs it again"
                )
        await claim.commit_node(StoredNode(
            node_id, self._fingerprints.get(node_id, ""), status, text, exact,
            error if error is not None else recovered, attempts, time.time() - duration, duration,
        ), drop_chunks=self.action == RESUME or node_id in self._mapped)

    async def stored_items(self, node_id: str) -> StoredItems:
        """Item outcomes of a parallel_map / batch_processor node stored before a crash."""
        if self.action != RESUME:
            return StoredItems(())
        rows = await self._owned().load_chunks(node_id, self._fingerprints.get(node_id, ""))
        return StoredItems(rows)

    def item_recorder(
        self,
        node_id: str,
        *,
        aligned: bool = True,
        every: int = ITEMS_PER_COMMIT,
        interval: float = COMMIT_INTERVAL,
        max_pending: int = MAX_PENDING,
    ) -> ItemRecorder:
        """Where a map node hands its item outcomes as they finish (see ItemRecorder).
        `aligned`: one result per item (parallel_map); False: a batch's results list."""
        recorder = ItemRecorder(self._owned(), node_id, self._fingerprints.get(node_id, ""),
                                self._dumps, aligned=aligned, every=every, interval=interval,
                                max_pending=max_pending, store=self.store.label)
        self._recorders.append(recorder)
        self._mapped.add(node_id)
        return recorder

    async def finish(self, envelope: Mapping[str, Any]) -> None:
        """Store the final envelope: from now on the run id answers with it."""
        claim = self._owned()
        for recorder in self._recorders:
            await recorder.flush()
        text = render(envelope, self._dumps)
        if text is None:
            text = json.dumps(envelope, default=repr, ensure_ascii=False)
        status = SUCCESS if envelope.get("status") == SUCCESS else FAILED
        await claim.finish(status, text)

    async def close(self) -> None:
        """Store what map items finished, give up the run id, close the store we opened.
        Safe to call twice; a run closed without finish() stays resumable."""
        recorders, self._recorders = self._recorders, []
        for recorder in recorders:
            try:
                await recorder.flush()
            except CheckpointError as exc:
                logger.warning("%s", exc)
        claim, self._claim = self._claim, None
        try:
            if claim is not None:
                await claim.release()
        finally:
            if self._owns_store:
                await self.store.close()

    async def __aenter__(self) -> RunSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class ItemRecorder:
    """Commits a map node's item outcomes in chunks, in the background.

    `add()` is synchronous and cheap: it buffers. Once ``every`` items (or ``interval``
    seconds) have gathered and no write is in flight, the buffer is rendered and written in
    the background; items finishing meanwhile join the next write, so a slow store makes
    chunks larger instead of slowing the map, up to ``max_pending`` items not yet stored:
    then `add()` returns True and the worker should ``await recorder.drain()``. `flush()`
    writes the rest and waits; call it before the node's own outcome is committed. A failed
    write is raised by the next call.
    """

    def __init__(self, claim: Claim, node_id: str, fingerprint: str, dumps: Dumps, *,
                 aligned: bool, every: int, interval: float, max_pending: int,
                 store: str) -> None:
        self._claim = claim
        self._store = store
        self.node_id = node_id
        self.fingerprint = fingerprint
        self._dumps = dumps
        self._aligned = aligned
        self._every = max(1, every)
        self._interval = interval
        self._max_pending = max(self._every, max_pending)
        self._in_flight = 0  # items of the write in flight
        self._buffer: list[tuple[int, int, Sequence[Any], Sequence[Mapping[str, Any]]]] = []
        self._buffered = 0
        self._last_write = time.monotonic()
        self._writing: asyncio.Task[None] | None = None
        self._starting = False  # a write task is made but has not run yet
        self._room: asyncio.Event | None = None  # set when a write ends (drain waits on it)
        self._failure: BaseException | None = None
        self.stored = 0  # items whose outcome is in the store
        self.unstored = 0  # items whose result did not round-trip: they run again on resume
        self.writes = 0  # transactions written

    def add(
        self, first: int, count: int, results: Sequence[Any],
        errors: Sequence[Mapping[str, Any]] = (),
    ) -> bool:
        """Items ``first .. first + count - 1`` finished. Aligned: `results` has one entry
        per item (a failed item's entry is ignored); `errors` are the error records
        (``index``, ``error``, ``error_type``) of the failed ones. True: too much is waiting
        for the store, ``await drain()`` before taking more items."""
        if self._failure is not None:
            raise self._failure
        self._buffer.append((first, count, results, errors))
        self._buffered += count
        if self._writing is None:
            if (self._buffered >= self._every
                    or time.monotonic() - self._last_write >= self._interval):
                self._write_buffer()
            return False
        return self.backlogged

    @property
    def backlogged(self) -> bool:
        """True while ``max_pending`` or more items wait for the store: ``await drain()``."""
        return self._writing is not None and self._buffered + self._in_flight >= self._max_pending

    @property
    def wants_turn(self) -> bool:
        """True when the worker should ``await drain()``: backlogged, or a write was begun
        that cannot reach the store until the event loop runs (items that never suspend
        would otherwise hold it back until the map is backlogged, and then wait for it)."""
        return self._starting or self.backlogged

    async def drain(self) -> None:
        """Let a write just begun start; wait until fewer than ``max_pending`` items wait
        for the store."""
        if self._starting and not self.backlogged:
            await asyncio.sleep(0)
        while self.backlogged:
            # Every worker of a map may wait here at once: one Event they share costs each a
            # future, where asyncio.wait would cost each a future and callbacks.
            if self._room is None:
                self._room = asyncio.Event()
            await self._room.wait()
        if self._failure is not None:
            raise self._failure

    async def flush(self) -> None:
        while self._writing is not None:
            await asyncio.wait([self._writing])
        if self._failure is not None:
            raise self._failure
        if self._buffer:
            rows = self._take()
            if rows:
                await self._claim.write_chunks(self.node_id, self.fingerprint, rows)
                self.stored += sum(row.count for row in rows)
                self.writes += 1

    def discard(self) -> None:
        """Drop the items not yet written: the node's own outcome, committed next, holds
        them (and deletes the node's chunks). A write in flight goes on; it is ordered
        before that commit on the store's one thread or connection, or, if it lands after,
        its rows go when the run finishes."""
        self._buffer = []
        self._buffered = 0

    def _write_buffer(self) -> None:
        rows = self._take()
        if not rows:
            return
        self._last_write = time.monotonic()
        self._in_flight = count = sum(row.count for row in rows)
        task = asyncio.get_running_loop().create_task(self._write(rows, count))
        self._writing = task
        self._starting = True
        task.add_done_callback(self._never_ran)

    async def _write(self, rows: list[ChunkRow], count: int) -> None:
        # What a write's end changes is done here, in the step of the task that sees it end,
        # not in a done callback one turn of the loop later: items that never suspend give
        # the loop few turns, and a map waits while its store looks busy.
        self._starting = False
        try:
            await self._claim.write_chunks(self.node_id, self.fingerprint, rows)
        except asyncio.CancelledError:
            self._ended(CheckpointError(
                self._store, f"node {self.node_id!r}: an item write was cancelled"))
            raise
        except BaseException as exc:  # noqa: BLE001 - raised by the recorder's next call
            self._ended(exc)
            return
        self.stored += count
        self.writes += 1
        self._ended(None)
        if self._buffered >= self._every:
            self._write_buffer()

    def _never_ran(self, task: asyncio.Task[None]) -> None:
        if self._writing is task:  # cancelled before its first step
            self._ended(CheckpointError(
                self._store, f"node {self.node_id!r}: an item write was cancelled"))

    def _ended(self, failure: BaseException | None) -> None:
        self._writing = None
        self._starting = False
        self._in_flight = 0
        if failure is not None:
            self._failure = failure
        room, self._room = self._room, None
        if room is not None:
            room.set()

    def _take(self) -> list[ChunkRow]:
        """The buffer as rows: contiguous index ranges merged, each rendered once."""
        entries = sorted(self._buffer, key=lambda entry: entry[0])
        self._buffer = []
        self._buffered = 0
        rows: list[ChunkRow] = []
        first, count = entries[0][0], 0
        results: list[Any] = []
        errors: list[Mapping[str, Any]] = []
        for start, size, values, records in entries:
            if start != first + count:
                rows += self._render(first, count, results, errors)
                first, count, results, errors = start, 0, [], []
            count += size
            results.extend(values)
            errors.extend(records)
        rows += self._render(first, count, results, errors)
        return rows

    def _render(self, first: int, count: int, results: list[Any],
                errors: list[Mapping[str, Any]]) -> list[ChunkRow]:
        failed = {record["index"] for record in errors}
        if failed and self._aligned:
            results = [None if first + i in failed else v for i, v in enumerate(results)]
        text, exact = encode(results, self._dumps)
        if exact:
            assert text is not None
            return [ChunkRow(first, count, text, _errors_text(errors))]
        if not self._aligned:
            self.unstored += count  # a batch is stored whole or not at all
            return []
        # Some item did not round-trip: store the runs of items around it, one row each.
        rows: list[ChunkRow] = []
        start = first
        kept: list[Any] = []
        for offset, value in enumerate(results):
            index = first + offset
            if index in failed or encode(value, self._dumps)[1]:
                kept.append(value)
                continue
            self.unstored += 1
            if kept:
                rows.append(self._row(start, kept, errors))
            start, kept = index + 1, []
        if kept:
            rows.append(self._row(start, kept, errors))
        return rows

    def _row(self, first: int, results: list[Any], errors: list[Mapping[str, Any]]) -> ChunkRow:
        end = first + len(results)
        mine = [record for record in errors if first <= record["index"] < end]
        return ChunkRow(first, len(results), self._dumps(results), _errors_text(mine))


def _errors_text(errors: Sequence[Mapping[str, Any]]) -> str:
    # [index, error, error_type] and, when the record says where in workflow.py, that too.
    return json.dumps([[r["index"], r["error"], r["error_type"],
                        *((r["where"],) if r.get("where") else ())] for r in errors],
                      ensure_ascii=False)


class StoredItems:
    """The item outcomes a map node had stored: which indexes are done, and their values."""

    def __init__(self, rows: Iterable[ChunkRow]) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._results: list[list[Any]] = []
        self._errors: list[dict[str, Any]] = []
        for row in sorted(rows, key=lambda r: r.first):
            if self._ends and row.first < self._ends[-1]:
                continue  # overlaps an earlier chunk (cannot happen at one fingerprint)
            self._starts.append(row.first)
            self._ends.append(row.first + row.count)
            self._results.append(json.loads(row.results))
            self._errors += [{"index": i, "error": e, "error_type": t,
                              **({"where": where[0]} if where else {})}
                             for i, e, t, *where in json.loads(row.errors)]

    @property
    def count(self) -> int:
        """Items with a stored outcome."""
        return sum(end - start for start, end in zip(self._starts, self._ends, strict=True))

    def __contains__(self, index: int) -> bool:
        at = bisect.bisect_right(self._starts, index) - 1
        return at >= 0 and index < self._ends[at]

    def pending(self, total: int) -> list[range]:
        """Index ranges of ``0 .. total - 1`` without a stored outcome, in order."""
        gaps, at = [], 0
        for start, end in zip(self._starts, self._ends, strict=True):
            if start > at:
                gaps.append(range(at, min(start, total)))
            at = max(at, end)
        if at < total:
            gaps.append(range(at, total))
        return [gap for gap in gaps if len(gap)]

    def results(self) -> Iterator[tuple[int, Any]]:
        """parallel_map: ``(index, result)`` of each stored successful item, in index order."""
        failed = {record["index"] for record in self._errors}
        for start, values in zip(self._starts, self._results, strict=True):
            for offset, value in enumerate(values):
                if start + offset not in failed:
                    yield start + offset, value

    def errors(self) -> list[dict[str, Any]]:
        """Error records ``{index, error, error_type}`` in index order (add ``item`` back
        from the input)."""
        return sorted(self._errors, key=lambda record: record["index"])

    def batch_results(self, before: int | None = None) -> list[Any]:
        """batch_processor: the stored batches' results, concatenated in index order (only
        those of batches starting before index `before`, if given)."""
        return [value for start, values in zip(self._starts, self._results, strict=True)
                if before is None or start < before for value in values]
