"""batch_process: chunking, every item exactly once, and flushing a quiet stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from kflow_runtime.patterns import batch_process


class Recorder:
    """A process_batch that records its chunks and returns one result per item."""

    def __init__(self) -> None:
        self.chunks: list[list[int]] = []

    async def __call__(self, chunk: list[int]) -> list[dict]:
        self.chunks.append(list(chunk))
        return [{"stored": True, "id": item} for item in chunk]


async def test_1003_items_in_chunks_of_50_make_21_batches_each_item_once():
    process = Recorder()
    out = await batch_process(process, list(range(1003)), batch_size=50)

    assert out["batches"] == 21
    assert out["processed_count"] == 1003
    assert [len(c) for c in process.chunks] == [50] * 20 + [3]
    assert [item for chunk in process.chunks for item in chunk] == list(range(1003))
    assert out["results"] == [{"stored": True, "id": i} for i in range(1003)]


async def test_generator_is_read_one_chunk_at_a_time():
    pulled = 0

    def source():
        nonlocal pulled
        for i in range(25):
            pulled += 1
            yield i

    seen_when_called: list[int] = []

    async def process(chunk: list[int]) -> list[int]:
        seen_when_called.append(pulled)
        return chunk

    out = await batch_process(process, source(), batch_size=10)
    assert seen_when_called == [10, 20, 25]
    assert out["results"] == list(range(25))


async def stream(n: int) -> AsyncIterator[int]:
    for i in range(n):
        await asyncio.sleep(0)
        yield i


@pytest.mark.parametrize("flush_interval", [None, 5.0])
async def test_async_iterable_is_chunked_and_the_last_partial_chunk_flushed(flush_interval):
    process = Recorder()
    out = await batch_process(process, stream(23), batch_size=10, flush_interval=flush_interval)
    assert [len(c) for c in process.chunks] == [10, 10, 3]
    assert out["processed_count"] == 23
    assert out["batches"] == 3


async def test_partial_chunk_is_flushed_while_the_stream_is_quiet():
    # The stream gives 3 items, then says nothing until it sees them processed: only the
    # flush interval can get them processed. The outer timeout turns a hang into a failure.
    first_batch_done = asyncio.Event()

    async def quiet_stream() -> AsyncIterator[int]:
        for i in range(3):
            yield i
        await first_batch_done.wait()
        for i in range(3, 5):
            yield i

    chunks: list[list[int]] = []

    async def process(chunk: list[int]) -> list[int]:
        chunks.append(chunk)
        first_batch_done.set()
        return chunk

    async with asyncio.timeout(10):
        out = await batch_process(process, quiet_stream(), batch_size=100, flush_interval=0.01)

    assert chunks == [[0, 1, 2], [3, 4]]
    assert out["results"] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("flush_interval", [None, 1.0])
async def test_failing_stream_gets_its_items_processed_then_raises(flush_interval):
    async def failing() -> AsyncIterator[int]:
        yield 1
        yield 2
        raise ConnectionError("stream lost")

    process = Recorder()
    with pytest.raises(ConnectionError, match="stream lost"):
        await batch_process(process, failing(), batch_size=10, flush_interval=flush_interval)
    assert process.chunks == [[1, 2]]


async def test_failing_iterable_gets_its_items_processed_then_raises():
    def failing():
        yield from range(12)
        raise OSError("disk gone")

    process = Recorder()
    with pytest.raises(OSError, match="disk gone"):
        await batch_process(process, failing(), batch_size=5)
    assert process.chunks == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11]]


async def test_process_batch_must_return_a_list():
    async def forgets(chunk: list[int]) -> None:
        return None

    with pytest.raises(TypeError, match="returned None"):
        await batch_process(forgets, [1, 2])


async def test_empty_input_makes_no_batches():
    process = Recorder()
    out = await batch_process(process, [], batch_size=10)
    assert out == {"results": [], "processed_count": 0, "batches": 0}
    assert process.chunks == []


def test_invalid_settings_fail_at_the_call():
    for bad in ({"batch_size": 0}, {"flush_interval": 0}):
        with pytest.raises(ValueError):
            asyncio.run(batch_process(Recorder(), [1], **bad))


# --------------------------------------------------------------------------- a failing batch


async def test_a_failing_batch_keeps_the_accounting_of_those_before_it():
    from kflow_runtime.patterns.batch import BatchError

    async def process(chunk: list[int]) -> list[int]:
        if 6 in chunk:
            raise ValueError("row 6 is bad")
        return [n * 10 for n in chunk]

    with pytest.raises(BatchError) as raised:
        await batch_process(process, list(range(10)), batch_size=3)
    error = raised.value
    assert str(error) == (
        "batch 2 (items 6-8 of the input: [6, 7, 8]) failed: ValueError: row 6 is bad; 6 items in 2 "
        "earlier batches were processed (their results are kept: the envelope's `partial`)"
    )
    assert isinstance(error.__cause__, ValueError)
    assert error.partial == {
        "results": [0, 10, 20, 30, 40, 50], "processed_count": 6, "batches": 2,
        "failed_batch": {"index": 2, "items": [6, 7, 8]},
    }


async def test_a_failing_batch_in_a_workflow_leaves_its_accounting_in_the_envelope():
    from kflow import AsyncLocalRuntime, AsyncPatterns, AsyncWorkflowBuilder

    builder = AsyncWorkflowBuilder("batches")
    builder.add_async_code("load", "result = list(range(1, 11))")
    AsyncPatterns.batch_processor(builder, "store", """
if 9 in items:
    raise ConnectionError("database went away")
batch_results = [n * n for n in items]
""", batch_size=4)
    builder.add_connection("load", "result", "store", "items")
    envelope = await AsyncLocalRuntime().execute_workflow_async(builder.build(), {})

    assert envelope["status"] == "failed"
    message = envelope["errors"]["store"]
    assert "batch 2 (items 8-9 of the input: [9, 10]) failed: ConnectionError: database went away" in message
    assert "8 items in 2 earlier batches were processed" in message
    # Reported at the user's own line, as before.
    assert message.startswith("test_batch.py:"), message
    assert envelope["partial"] == {"store": {
        "results": [1, 4, 9, 16, 25, 36, 49, 64], "processed_count": 8, "batches": 2,
        "failed_batch": {"index": 2, "items": [9, 10]},
    }}
