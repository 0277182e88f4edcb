"""Both checkpoint stores, against a real SQLite file and the real PostgreSQL: what goes in
comes back, resumes restore what they should, gc leaves no rows behind."""

from __future__ import annotations

import datetime
import json
import time
from typing import Any

import pytest

from kflow_runtime.checkpoint import (
    InputsMismatch,
    RunBusy,
    RunSession,
    Store,
    gc_runs,
    open_run,
    open_store,
)

CHAIN = {"a": "fa", "b": "fb", "c": "fc"}
CHAIN_UP = {"b": ["a"], "c": ["b"]}





async def start(url: str, run_id: str = "r1", fingerprints: dict[str, str] = CHAIN,
                **kwargs: Any) -> RunSession:
    options: dict[str, Any] = dict(workflow="w", inputs={"x": 1}, fingerprints=fingerprints,
                                   upstream=CHAIN_UP)
    options.update(kwargs)
    return await open_run(url, run_id=run_id, **options)


async def counts(url: str) -> dict[str, int]:
    async with await open_store(url) as store:
        return await store.row_counts()


# -- node outcomes ------------------------------------------------------------------------------


async def test_a_resume_restores_each_stored_outcome_as_it_was(store_url: str) -> None:
    async with await start(store_url) as session:
        assert session.action == "start" and session.messages == ()
        await session.node_done("a", output={"rows": [1, 2], "name": "ä"}, duration=0.25)
        await session.node_done("b", output=None, error="ValueError: boom", attempts=3,
                                duration=0.5)
    async with await start(store_url) as session:
        assert session.action == "resume"
        assert session.resumed == ("a", "b")
        assert session.messages == (
            f"resuming run 'r1' from {session.store.label} (start 2): 2 of 3 nodes restored",
        )
        a, b = session.restored("a"), session.restored("b")
        assert a is not None and b is not None
        assert (a.status, a.output, a.error, a.attempts, a.duration) == (
            "success", {"rows": [1, 2], "name": "ä"}, None, 1, 0.25)
        assert (b.status, b.output, b.error, b.attempts) == ("failed", None, "ValueError: boom", 3)
        assert session.restored("c") is None


async def test_a_recovered_node_keeps_its_output_and_the_error_it_recovered_from(
    store_url: str,
) -> None:
    async with await start(store_url) as session:
        await session.node_done("a", output={"fallback": True}, recovered="TimeoutError: slow")
    async with await start(store_url) as session:
        restored = session.restored("a")
        assert restored is not None
        assert (restored.status, restored.output, restored.error) == (
            "recovered", {"fallback": True}, "TimeoutError: slow")


async def test_an_output_that_does_not_round_trip_is_stored_for_show_and_reruns(
    store_url: str,
) -> None:
    def render(value: Any) -> str:
        return json.dumps(value, default=str)

    when = datetime.datetime(2024, 5, 1, 12, 0)
    async with await start(store_url, dumps=render) as session:
        await session.node_done("a", output={"at": when})
        await session.node_done("b", output=[1])
        assert session.notes == [
            "node 'a': its output (dict) does not round-trip through JSON, so a resume runs it again"
        ]
    async with await open_store(store_url) as store:
        stored = (await store.get_nodes("r1"))["a"]
        assert (stored.output, stored.exact) == ('{"at": "2024-05-01 12:00:00"}', False)
    async with await start(store_url, dumps=render) as session:
        assert session.resumed == ("b",)
        assert session.messages[1:] == (
            "node 'a' runs again: its stored output did not round-trip through JSON",)


async def test_a_changed_node_reruns_with_its_downstream_and_their_rows_go(store_url: str) -> None:
    async with await start(store_url) as session:
        for node_id in CHAIN:
            await session.node_done(node_id, output=node_id)
    async with await start(store_url, fingerprints={**CHAIN, "b": "fb2"}) as session:
        assert session.resumed == ("a",)
        assert session.messages[1:] == (
            "node 'b' runs again: it changed since the stored run",
            "node 'c' runs again: upstream node 'b' changed since the stored run",
        )
        assert session.restored("b") is None
    async with await open_store(store_url) as store:
        assert list(await store.get_nodes("r1")) == ["a"]  # nothing stale stays behind


async def test_a_finished_run_answers_with_its_envelope_and_runs_nothing(store_url: str) -> None:
    envelope = {"status": "success", "results": {"a": 1}, "run_id": "r1"}
    async with await start(store_url) as session:
        await session.node_done("a", output=1)
        await session.finish(envelope)
    async with await start(store_url) as session:
        assert session.action == "finished"
        assert session.finished == envelope
        assert session.messages == (
            f"run 'r1' already finished in {session.store.label}; returning its stored "
            "envelope, nothing runs",)
    async with await open_store(store_url) as store:
        record = await store.get_run("r1")
        assert record is not None
        assert (record.status, record.starts, record.stored_nodes) == ("success", 1, 1)
        assert record.duration is not None and record.duration >= 0
        # The envelope holds the results now: node rows keep status and timing only.
        assert (await store.get_nodes("r1"))["a"].output is None


async def test_a_failed_run_is_stored_as_failed(store_url: str) -> None:
    async with await start(store_url) as session:
        await session.finish({"status": "failed", "errors": {"a": "boom"}})
    async with await open_store(store_url) as store:
        record = await store.get_run("r1")
        assert record is not None and record.status == "failed"


async def test_resuming_with_other_inputs_is_refused_and_changes_nothing(store_url: str) -> None:
    async with await start(store_url) as session:
        await session.node_done("a", output=1)
    with pytest.raises(InputsMismatch, match="run 'r1' was started with other inputs"):
        await start(store_url, inputs={"x": 2})
    async with await start(store_url) as session:  # the claim was given back
        assert session.resumed == ("a",)


async def test_a_run_id_is_claimed_once_within_a_process(store_url: str) -> None:
    async with await start(store_url):
        with pytest.raises(RunBusy) as caught:
            await start(store_url)
        assert "run 'r1' is running in another process" in str(caught.value)
        async with await start(store_url, run_id="r2") as other:
            assert other.action == "start"
    async with await start(store_url) as session:
        assert session.action == "resume"


# -- map items -----------------------------------------------------------------------------------


async def test_map_items_are_committed_in_merged_chunks_and_restored_by_index(
    store_url: str,
) -> None:
    fingerprints = {"m": "fm"}
    async with await start(store_url, fingerprints=fingerprints, upstream={}) as session:
        recorder = session.item_recorder("m", every=4, interval=3600)
        # Workers finish blocks out of order; a failed item's slot holds anything.
        recorder.add(2, 2, [30, 40])
        recorder.add(0, 2, [10, object()],
                     [{"index": 1, "item": "x", "error": "boom", "error_type": "ValueError"}])
        recorder.add(6, 1, [70])
        await recorder.flush()
        assert recorder.stored == 5
    async with await start(store_url, fingerprints=fingerprints, upstream={}) as session:
        items = await session.stored_items("m")
        assert items.pending(9) == [range(4, 6), range(7, 9)]
        assert list(items.results()) == [(0, 10), (2, 30), (3, 40), (6, 70)]
        assert items.errors() == [{"index": 1, "error": "boom", "error_type": "ValueError"}]
    assert (await counts(store_url))["chunks"] == 2  # 0..3 merged into one row, 6 on its own


async def test_items_that_do_not_round_trip_are_left_to_run_again(store_url: str) -> None:
    async with await start(store_url, fingerprints={"m": "fm"}, upstream={}) as session:
        recorder = session.item_recorder("m", every=1)
        recorder.add(0, 5, [1, 2, (3, 3), 4, 5])
        await recorder.flush()
        assert (recorder.stored, recorder.unstored) == (4, 1)
    async with await start(store_url, fingerprints={"m": "fm"}, upstream={}) as session:
        items = await session.stored_items("m")
        assert items.pending(5) == [range(2, 3)]


async def test_batches_are_stored_whole(store_url: str) -> None:
    async with await start(store_url, fingerprints={"batch": "fb"}, upstream={}) as session:
        recorder = session.item_recorder("batch", aligned=False, every=1)
        recorder.add(0, 3, ["sum=6"])
        recorder.add(3, 3, ["sum=15"])
        await recorder.flush()
    async with await start(store_url, fingerprints={"batch": "fb"}, upstream={}) as session:
        items = await session.stored_items("batch")
        assert items.pending(8) == [range(6, 8)]
        assert items.batch_results() == ["sum=6", "sum=15"]


async def test_items_of_an_older_fingerprint_are_not_restored(store_url: str) -> None:
    async with await start(store_url, fingerprints={"m": "old"}, upstream={}) as session:
        recorder = session.item_recorder("m", every=1)
        recorder.add(0, 2, [1, 2])
        await recorder.flush()
    async with await start(store_url, fingerprints={"m": "new"}, upstream={}) as session:
        assert (await session.stored_items("m")).count == 0


async def test_closing_a_session_stores_the_items_that_finished(store_url: str) -> None:
    async with await start(store_url, fingerprints={"m": "fm"}, upstream={}) as session:
        session.item_recorder("m", every=1000, interval=3600).add(0, 3, [1, 2, 3])
        # Cancelled or crashed before the map ended: close() still writes what finished.
    async with await start(store_url, fingerprints={"m": "fm"}, upstream={}) as session:
        assert (await session.stored_items("m")).count == 3


async def test_committing_the_map_node_drops_its_item_chunks(store_url: str) -> None:
    async with await start(store_url, fingerprints={"m": "fm"}, upstream={}) as session:
        recorder = session.item_recorder("m", every=1)
        recorder.add(0, 2, [1, 2])
        await recorder.flush()
        assert (await counts(store_url))["chunks"] == 1
        await session.node_done("m", output={"results": [1, 2]})
        assert (await counts(store_url))["chunks"] == 0


# -- housekeeping --------------------------------------------------------------------------------


async def fill(url: str, run_id: str, *, finish: bool) -> None:
    async with await start(url, run_id=run_id, fingerprints={"a": "1", "m": "2"},
                           upstream={}) as session:
        await session.node_done("a", output=[run_id])
        recorder = session.item_recorder("m", every=1)
        recorder.add(0, 2, [1, 2])
        recorder.add(5, 1, [6])
        await recorder.flush()
        if finish:
            await session.finish({"status": "success"})


async def test_gc_deletes_old_runs_with_every_row_they_own_and_keeps_held_ones(
    store_url: str,
) -> None:
    await fill(store_url, "done", finish=True)
    await fill(store_url, "crashed", finish=False)
    await fill(store_url, "held", finish=False)
    assert await counts(store_url) == {"runs": 3, "nodes": 3, "chunks": 4}

    assert (await gc_runs(store_url, "7d")).runs == 0  # all written just now

    held = await start(store_url, run_id="held", fingerprints={"a": "1", "m": "2"}, upstream={})
    try:
        report = await gc_runs(store_url, "1h", now=time.time() + 2 * 3600)
    finally:
        await held.close()
    assert (report.runs, report.nodes, report.chunks, report.busy) == (2, 2, 2, ("held",))
    assert await counts(store_url) == {"runs": 1, "nodes": 1, "chunks": 2}
    async with await open_store(store_url) as store:
        assert [r.run_id for r in await store.list_runs()] == ["held"]
        assert await orphans(store) == 0

    report = await gc_runs(store_url, 0, now=time.time() + 1)
    assert (report.runs, report.busy) == (1, ())
    assert await counts(store_url) == {"runs": 0, "nodes": 0, "chunks": 0}


async def orphans(store: Store) -> int:
    """Rows whose run is gone, counted with the store's own SQL."""
    from kflow_runtime.checkpoint._postgres import PostgresStore
    from kflow_runtime.checkpoint._sqlite import SqliteStore

    if isinstance(store, SqliteStore):
        def count() -> int:
            assert store._conn is not None
            return sum(store._conn.execute(
                f"SELECT count(*) FROM kflow_{t} WHERE run_id NOT IN (SELECT run_id FROM kflow_runs)"
            ).fetchone()[0] for t in ("nodes", "chunks"))
        return await store._call(count)
    assert isinstance(store, PostgresStore)
    s = store._s
    return sum([await store._pool.fetchval(
        f"SELECT count(*) FROM {s}.{t} WHERE run_id NOT IN (SELECT run_id FROM {s}.runs)"
    ) for t in ("nodes", "chunks")])


async def test_list_runs_newest_first_with_status_and_duration(store_url: str) -> None:
    await fill(store_url, "first", finish=True)
    await fill(store_url, "second", finish=False)
    async with await open_store(store_url) as store:
        runs = await store.list_runs()
        assert [(r.run_id, r.status, r.stored_nodes) for r in runs] == [
            ("second", "running", 1), ("first", "success", 1)]
        assert runs[0].duration is None and (runs[1].duration or -1) >= 0
        assert all(r.envelope is None for r in runs)
        assert [r.run_id for r in await store.list_runs(limit=1)] == ["second"]
        assert await store.list_runs(workflow="other") == []


async def test_a_recorder_asks_workers_to_wait_while_too_much_waits_for_the_store(
    store_url: str,
) -> None:
    async with await start(store_url, fingerprints={"m": "fm"}, upstream={}) as session:
        recorder = session.item_recorder("m", every=2, max_pending=4, interval=3600)
        assert recorder.add(0, 2, [0, 1]) is False  # starts a write
        assert recorder.add(2, 2, [2, 3]) is True  # 2 in flight + 2 buffered: wait
        assert recorder.backlogged
        await recorder.drain()  # the first write is done; the next one is under way
        assert not recorder.backlogged
        await recorder.flush()
        assert (recorder.stored, recorder.writes) == (4, 2)
