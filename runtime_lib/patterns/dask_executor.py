"""executor="dask": parallel_map's chunks on a Dask cluster (`distributed`).

Loaded only when a map asks for Dask (`executor="dask"`, or `KFLOW_DASK_SCHEDULER` set), so a
run without Dask never imports `distributed`, `dask` or this module.

Client side (the event loop of the run): `DaskExecutor.session` pickles `process_item` once with
cloudpickle, its generated module by value, opens an asynchronous `distributed.Client` on the
running loop, and yields `run_chunk`, which submits one Dask task per chunk of `(index, item)`
pairs and awaits its outcomes. It asks parallel_map to keep about two chunks per worker thread
in flight (`chunks_in_flight`), so every worker has its next chunk queued.

Worker side (each Dask worker process): `_run_chunk_on_worker` runs a chunk with the outcome
contract of `run_chunk_sync`, on one event loop per worker process in a thread of its own, shared
by every chunk of the map on that worker. A semaphore of `max_workers` slots per map and worker
bounds the items in flight on that worker, however many threads it has; async items run on that
loop under `asyncio.timeout`, sync items in a pool of `max_workers` threads (a timed-out sync
item is recorded at once, but its thread runs on, as with executor="thread").

A worker that dies mid-map: Dask reruns its tasks elsewhere (up to
`distributed.scheduler.allowed-failures`, default 3); after that the chunk's items are recorded
as failed with `KilledWorker`. A scheduler lost for good (the client gave up reconnecting):
the chunks in flight and all later ones are recorded as failed. Items are thus run at least
once, and never lost.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import io
import os
import sys
import threading
import types
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import cloudpickle

from ..observe import trace_carrier
from .executors import DASK_SCHEDULER_ENV, Chunk, Outcome, _run_items, is_async_callable

__all__ = ["DASK_SCHEDULER_ENV", "DaskExecutor", "dumps_for_workers", "local_cluster"]


class DaskExecutor:
    """Run parallel_map's chunks on the Dask scheduler at `address`.

    Without `address`, `$KFLOW_DASK_SCHEDULER` is used, read when a map starts; without that
    either, a `distributed.LocalCluster` of this process (see `local_cluster`). Holds no
    per-map state: one instance can serve every map.
    """

    def __init__(self, address: str | None = None) -> None:
        self.address = address

    def chunk_size(self, total: int | None, max_workers: int) -> int:
        # A chunk is one Dask task, which costs a scheduler round trip (10-30 ms measured on a
        # busy 2-vCPU machine). It holds at least 4 * max_workers items, so a worker's slots
        # stay busy while it runs; big maps are cut into about 64 chunks of at most 4096
        # items; small ones still into about 8, so they spread over the workers.
        enough = 4 * max_workers
        if total is None:
            return enough
        size = max(enough, min(4096, -(-total // 64)))
        return max(1, min(size, -(-total // 8)))

    @asynccontextmanager
    async def session(
        self,
        process_item: Callable[[Any], Any],
        *,
        max_workers: int,
        timeout_per_item: float | None,
    ) -> AsyncIterator[_RunChunk]:
        payload = dumps_for_workers(process_item)
        address, source = await self._address()
        # Traced (OpenTelemetry): each chunk's span on its worker joins this map's trace.
        carrier = trace_carrier()

        from distributed import Client

        try:
            client = await Client(address, asynchronous=True, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(
                f"cannot reach the Dask scheduler at {address} ({source}): {exc}"
            ) from exc
        watch: asyncio.Task[None] | None = None
        try:
            threads = sum((await client.nthreads()).values())
            lost = asyncio.get_running_loop().create_future()
            watch = asyncio.create_task(_watch(client, lost))
            run_chunk = _RunChunk(
                client,
                uuid.uuid4().hex,
                payload,
                max_workers,
                timeout_per_item,
                chunks_in_flight=max(max_workers, 2 * threads),
                lost=lost,
                address=address,
                carrier=carrier,
            )
            try:
                yield run_chunk
            finally:
                # Stop what still runs for this map on the workers (after a failure or a
                # cancellation) and free their per-map pools; best effort.
                if not lost.done():
                    try:
                        await asyncio.wait_for(
                            client.run(_end_session, run_chunk.token, on_error="ignore"), 10
                        )
                    except Exception:  # a dead or unreachable worker holds nothing to free
                        pass
        finally:
            if watch is not None:
                watch.cancel()
            await client.close()

    async def _address(self) -> tuple[str, str]:
        """The scheduler's address, and where it came from (for error messages)."""
        if self.address:
            return self.address, "DaskExecutor(address)"
        env = os.environ.get(DASK_SCHEDULER_ENV)
        if env:
            return env, f"${DASK_SCHEDULER_ENV}"
        cluster = await asyncio.to_thread(local_cluster)
        return cluster.scheduler_address, "the local cluster of executor='dask'"


class _RunChunk:
    """`run_chunk` of one map: submits a chunk as one task and awaits its outcomes."""

    def __init__(
        self,
        client: Any,
        token: str,
        payload: bytes,
        max_workers: int,
        timeout: float | None,
        *,
        chunks_in_flight: int,
        lost: asyncio.Future[None],
        address: str,
        carrier: dict[str, str] | None = None,
    ) -> None:
        self.carrier = carrier
        self.client = client
        self.token = token
        self.payload = payload
        self.max_workers = max_workers
        self.timeout = timeout
        # Read by parallel_map: how many chunks to keep in flight (default: max_workers).
        self.chunks_in_flight = chunks_in_flight
        self.lost = lost
        self.address = address

    async def __call__(self, chunk: Chunk) -> list[Outcome]:
        if not self.lost.done():
            future = self.client.submit(
                _run_chunk_on_worker,
                self.token,
                self.payload,
                self.max_workers,
                self.timeout,
                chunk,
                self.carrier,
                key=f"kflow-chunk-{self.token}-{chunk[0][0]}",  # readable on the dashboard
            )
            # A client that loses its scheduler for good closes, but leaves its futures
            # pending: wait for the chunk or for that, whichever comes first.
            waiter = asyncio.ensure_future(_result(future))
            try:
                await asyncio.wait((waiter, self.lost), return_when=asyncio.FIRST_COMPLETED)
            except BaseException:
                waiter.cancel()
                raise
            if waiter.done():
                return waiter.result()
            waiter.cancel()
        # parallel_map records every item of this chunk as failed with this error.
        raise ConnectionError(f"lost the Dask scheduler at {self.address}")


async def _result(future: Any) -> Any:
    return await future


async def _watch(client: Any, lost: asyncio.Future[None]) -> None:
    """Resolve `lost` once the client has closed on its own (it gave up reconnecting)."""
    while client.status not in ("closing", "closed"):
        await asyncio.sleep(0.5)
    if not lost.done():
        lost.set_result(None)


# --- what travels to the workers ------------------------------------------------------------


def dumps_for_workers(process_item: Callable[[Any], Any]) -> bytes:
    """`process_item` as cloudpickle bytes that a Dask worker can load.

    The module it comes from is pickled *by value* when workers cannot import it: kflow's
    in-memory modules (`kflow_generated_<hash>`), any module without an import spec, and a
    generated module imported from its file. `__main__` (`python out.py`) is pickled by value by
    cloudpickle anyway. Raises TypeError when it cannot be pickled (a lock, a connection...).
    """
    for module in _modules_of(process_item):
        if _workers_cannot_import(module):
            cloudpickle.register_pickle_by_value(module)
    buffer = io.BytesIO()
    try:
        _Pickler(buffer).dump(process_item)
    except Exception as exc:
        raise TypeError(
            f"process_item cannot be sent to Dask workers: {type(exc).__name__}: {exc}; "
            "it may only use values that pickle: open connections, locks and clients "
            "inside process_item, not outside it"
        ) from exc
    return buffer.getvalue()


def _modules_of(fn: Any) -> list[types.ModuleType]:
    names = {getattr(fn, "__module__", None), type(fn).__module__}
    inner = getattr(fn, "func", None)  # functools.partial
    if inner is not None:
        names.add(getattr(inner, "__module__", None))
        # run_many maps partial(_one, run, options): `run` is the generated module's, the
        # method of its rt.Program, which names the module (kflow_runtime.program).
        for arg in getattr(fn, "args", ()):
            if callable(arg):
                names.add(getattr(arg, "__module__", None))
                module = getattr(getattr(arg, "__self__", None), "module", None)
                if isinstance(module, str):
                    names.add(module)
    return [sys.modules[name] for name in names if name in sys.modules and name != "__main__"]


def _workers_cannot_import(module: types.ModuleType) -> bool:
    return (
        module.__name__.startswith("kflow_generated_")
        or getattr(module, "__spec__", None) is None
        or (hasattr(module, "WORKFLOW") and hasattr(module, "SOURCE_MAP"))  # kflowc output
    )


class _Pickler(cloudpickle.Pickler):
    """cloudpickle, plus `functools.cache`d functions of by-value modules.

    Those pickle by *name*, as `module.qualname`, which a worker cannot import; the
    executor="process" template calls such a function. They travel as the wrapped function
    (by value) and are wrapped again on the worker, with an empty cache.
    """

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is functools._lru_cache_wrapper:
            module = sys.modules.get(getattr(obj, "__module__", None) or "")
            if module is not None and (
                module.__name__ == "__main__"
                or module.__name__ in cloudpickle.list_registry_pickle_by_value()
            ):
                return _rewrap_cached, (obj.__wrapped__, obj.cache_parameters())
        return super().reducer_override(obj)


def _rewrap_cached(fn: Callable[..., Any], parameters: dict[str, Any]) -> Callable[..., Any]:
    return functools.lru_cache(maxsize=parameters["maxsize"], typed=parameters["typed"])(fn)


# --- on a worker ------------------------------------------------------------------------------


def _run_chunk_on_worker(
    token: str, payload: bytes, max_workers: int, timeout: float | None, chunk: Chunk,
    carrier: dict[str, str] | None = None,
) -> list[Outcome]:
    """The Dask task: run `chunk` on this worker's kflow loop, answer one outcome per item.

    With a trace `carrier` (an OpenTelemetry-traced run), inside a span of the run's trace."""
    if carrier is not None:
        from kflow_runtime.otel import worker_span

        attributes = {"kflow.map.first": chunk[0][0] if chunk else 0,
                      "kflow.map.size": len(chunk), "kflow.worker.pid": os.getpid()}
        with worker_span(carrier, "parallel_map batch", attributes):
            return _run_chunk(token, payload, max_workers, timeout, chunk)
    return _run_chunk(token, payload, max_workers, timeout, chunk)


def _run_chunk(
    token: str, payload: bytes, max_workers: int, timeout: float | None, chunk: Chunk
) -> list[Outcome]:
    session = _worker_session(token, payload, max_workers, timeout)
    future = asyncio.run_coroutine_threadsafe(session.run(chunk), session.loop)
    session.running.add(future)
    try:
        return future.result()
    finally:
        session.running.discard(future)


class _WorkerSession:
    """One map on one worker process: its function, `max_workers` slots, its thread pool."""

    def __init__(self, payload: bytes, max_workers: int, timeout: float | None, loop: Any) -> None:
        self.fn = cloudpickle.loads(payload)
        self.is_async = is_async_callable(self.fn)
        self.max_workers = max_workers
        self.timeout = timeout
        self.loop = loop
        self.slots = asyncio.Semaphore(max_workers)  # binds to the loop on first use
        self.pool = (
            None
            if self.is_async
            else ThreadPoolExecutor(max_workers, thread_name_prefix="kflow-dask-item")
        )
        self.running: set[Future[list[Outcome]]] = set()

    async def run(self, chunk: Chunk) -> list[Outcome]:
        outcomes: list[Outcome] = []
        pending = iter(chunk)
        call = self.fn if self.is_async else self._in_thread

        async def lane() -> None:
            for index, item in pending:
                async with self.slots:  # shared by every chunk of this map on this worker
                    outcomes.extend(await _run_items(call, [(index, item)], self.timeout))

        await asyncio.gather(*(lane() for _ in range(min(self.max_workers, len(chunk)))))
        return outcomes

    def _in_thread(self, item: Any) -> asyncio.Future[Any]:
        assert self.pool is not None
        return self.loop.run_in_executor(self.pool, self.fn, item)

    def close(self) -> None:
        for future in list(self.running):
            future.cancel()  # cancels the chunk's coroutine on the loop
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)


# Per worker process: the maps it has seen (most recent last) and the loop they run on.
_SESSIONS: OrderedDict[str, _WorkerSession] = OrderedDict()
_KEEP_IDLE_SESSIONS = 32
_LOCK = threading.Lock()
_LOOP: asyncio.AbstractEventLoop | None = None


def _worker_session(
    token: str, payload: bytes, max_workers: int, timeout: float | None
) -> _WorkerSession:
    with _LOCK:
        session = _SESSIONS.get(token)
        if session is None:
            session = _SESSIONS[token] = _WorkerSession(
                payload, max_workers, timeout, _worker_loop()
            )
            # A client that vanished never ends its sessions: drop the oldest idle ones.
            idle = [key for key, old in _SESSIONS.items() if not old.running and key != token]
            for key in idle[: max(0, len(_SESSIONS) - _KEEP_IDLE_SESSIONS)]:
                _SESSIONS.pop(key).close()
        return session


def _worker_loop() -> asyncio.AbstractEventLoop:
    global _LOOP
    if _LOOP is None:
        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, name="kflow-dask-loop", daemon=True).start()
        _LOOP = loop
    return _LOOP


def _end_session(token: str) -> None:
    """Run on every worker when a map ends (`client.run`): stop and free what it left."""
    with _LOCK:
        session = _SESSIONS.pop(token, None)
    if session is not None:
        session.close()


# --- executor="dask" without a scheduler: a cluster of this process -------------------------

_CLUSTER: Any = None
_CLUSTER_LOCK = threading.Lock()
_CLOSE_AT_EXIT = False


def local_cluster() -> Any:
    """The `distributed.LocalCluster` of executor="dask" when no scheduler is configured.

    Started on first use: one worker process per CPU (`os.cpu_count()`), one thread each, its
    dashboard (if bokeh is installed) on a free port, `local_cluster().dashboard_link`. Closed
    at interpreter exit. Blocks while it starts (seconds): call it off the event loop, as
    `DaskExecutor` does.
    """
    global _CLUSTER, _CLOSE_AT_EXIT
    with _CLUSTER_LOCK:
        if _CLUSTER is None or _CLUSTER.status.name in ("closing", "closed", "failed"):
            from distributed import LocalCluster

            _CLUSTER = LocalCluster(
                n_workers=os.cpu_count() or 1,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # a free port, never a clash on 8787
            )
            if not _CLOSE_AT_EXIT:
                atexit.register(_close_local_cluster)
                _CLOSE_AT_EXIT = True
        return _CLUSTER


def _close_local_cluster() -> None:
    global _CLUSTER
    with _CLUSTER_LOCK:
        cluster, _CLUSTER = _CLUSTER, None
    if cluster is not None:
        cluster.close()
