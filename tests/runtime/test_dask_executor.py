"""executor="dask" and $KFLOW_DASK_SCHEDULER, on a real local Dask cluster (no mocks).

The modules under test are compiled in memory (`kflow_generated_<hash>`), so their code reaches
the workers only by value (cloudpickle), as it would from a user's machine to a cluster.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")

from kflow import AsyncWorkflowBuilder  # noqa: E402
from kflow.runtime import AsyncLocalRuntime  # noqa: E402
from kflow_runtime.patterns import parallel_map  # noqa: E402
from kflow_runtime.patterns.dask_executor import DaskExecutor  # noqa: E402
from kflow_runtime.patterns.executors import DASK_SCHEDULER_ENV  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

SQUARE = """\
async def process_item(x):
    if x % 7 == 0:
        raise ValueError(f"no multiples of 7: {x}")
    return {"v": x * x, "pid": os.getpid()}
"""

# executor="process" compiles to a module-level function calling a functools.cache'd one.
CUBE = """\
def process_item(x):
    if x % 7 == 3:
        raise KeyError(x)
    return {"v": x ** 3, "pid": os.getpid()}
"""


@pytest.fixture(scope="module")
def cluster():
    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
    )
    yield cluster
    cluster.close()


@pytest.fixture
def on_cluster(cluster, monkeypatch):
    monkeypatch.setenv(DASK_SCHEDULER_ENV, cluster.scheduler_address)
    return cluster


def compiled(builder: AsyncWorkflowBuilder):
    return AsyncLocalRuntime().module(builder.build())


async def worker_pids(cluster) -> set[int]:
    async with distributed.Client(
        cluster.scheduler_address, asynchronous=True, set_as_default=False
    ) as client:
        await client.wait_for_workers(len(cluster.workers))
        return set((await client.run(os.getpid)).values())


def without_timings(envelope: dict) -> dict:
    """The envelope minus what differs between two runs: times, run id, worker pids."""
    envelope = json.loads(json.dumps(envelope))
    for key in ("execution_times", "total_duration", "run_id"):
        envelope.pop(key, None)
    for output in envelope["results"].values():
        for key in ("duration", "total_duration", "items_per_second", "batches"):
            output["statistics"].pop(key)
        for error in output["errors"]:
            # The user's line, known for items run in this process only (not on workers).
            error.pop("where", None)
        for value in output["results"]:
            value.pop("pid")
    return envelope


def result_pids(envelope: dict) -> set[int]:
    return {v["pid"] for out in envelope["results"].values() for v in out["results"]}


async def test_env_sends_every_map_to_the_cluster_with_the_local_contract(cluster, monkeypatch):
    b = AsyncWorkflowBuilder("squares")
    b.add_parallel_map("sq", SQUARE, max_workers=8, continue_on_error=True)
    b.add_parallel_map("cube", CUBE, max_workers=2, executor="process", continue_on_error=True)
    module = compiled(b)
    inputs = {"items": list(range(20_000))}

    local = await module.run(inputs)
    monkeypatch.setenv(DASK_SCHEDULER_ENV, cluster.scheduler_address)
    remote = await module.run(inputs)

    assert remote["status"] == "success", remote["errors"]
    assert without_timings(remote) == without_timings(local)
    square = remote["results"]["sq"]
    assert len(square["results"]) + len(square["errors"]) == 20_000
    assert square["errors"][1] == {
        "index": 7,
        "item": 7,
        "error": "no multiples of 7: 7",
        "error_type": "ValueError",
    }
    # Both maps ran on the cluster's workers, and on more than one of them.
    pids = result_pids(remote)
    assert pids <= await worker_pids(cluster)
    assert len({v["pid"] for v in square["results"]}) == 2
    assert len({v["pid"] for v in remote["results"]["cube"]["results"]}) == 2


async def test_timeouts_on_the_cluster_async_and_sync(on_cluster):
    b = AsyncWorkflowBuilder("slow")
    b.add_parallel_map(
        "waits",
        "async def process_item(x):\n    await asyncio.sleep(60 if x == 2 else 0)\n    return x\n",
        max_workers=4,
        timeout_per_item=0.5,
        continue_on_error=True,
    )
    b.add_parallel_map(
        "blocks",
        "def process_item(x):\n    time.sleep(3 if x == 3 else 0)\n    return x\n",
        max_workers=4,
        timeout_per_item=0.5,
        continue_on_error=True,
    )
    envelope = await compiled(b).run({"items": list(range(6))})

    timed_out = {"error": "item timed out after 0.5s", "error_type": "TimeoutError"}
    waits, blocks = envelope["results"]["waits"], envelope["results"]["blocks"]
    assert waits["results"] == [0, 1, 3, 4, 5]
    assert waits["errors"] == [{"index": 2, "item": 2, **timed_out}]
    assert blocks["results"] == [0, 1, 2, 4, 5]
    assert blocks["errors"] == [{"index": 3, "item": 3, **timed_out}]


async def test_max_workers_in_flight_per_worker_across_its_threads(monkeypatch):
    # One worker with two threads: two chunks run at once there, yet share max_workers slots.
    with distributed.LocalCluster(
        n_workers=1, processes=True, threads_per_worker=2, dashboard_address=":0"
    ) as two_threads:
        monkeypatch.setenv(DASK_SCHEDULER_ENV, two_threads.scheduler_address)
        b = AsyncWorkflowBuilder("peak")
        b.add_parallel_map(
            "count",
            "state = {'now': 0, 'peak': 0}\n"
            "async def process_item(x):\n"
            "    state['now'] += 1\n"
            "    state['peak'] = max(state['peak'], state['now'])\n"
            "    await asyncio.sleep(0.005)\n"
            "    state['now'] -= 1\n"
            "    return state['peak']\n",
            max_workers=3,
        )
        envelope = await compiled(b).run({"items": list(range(300))})
    peaks = envelope["results"]["count"]["results"]
    assert len(peaks) == 300
    assert max(peaks) == 3


async def test_a_worker_killed_mid_map_loses_no_item(on_cluster, tmp_path):
    marker = tmp_path / "killed"
    b = AsyncWorkflowBuilder("kill")
    b.add_parallel_map(
        "sq",
        "async def process_item(x):\n"
        "    if x == 3000 and not os.path.exists(marker):\n"
        "        with open(marker, 'w') as f:\n"
        "            f.write(str(os.getpid()))\n"
        "        os.kill(os.getpid(), 9)\n"
        "    return {'v': x * x, 'pid': os.getpid()}\n",
        max_workers=8,
        continue_on_error=True,
    )
    envelope = await compiled(b).run({"items": list(range(10_000)), "marker": str(marker)})

    killed = int(marker.read_text())  # the kill happened, in a worker process
    out = envelope["results"]["sq"]
    assert out["errors"] == []
    assert [v["v"] for v in out["results"]] == [x * x for x in range(10_000)]
    assert out["results"][3000]["pid"] != killed  # its chunk ran again elsewhere
    assert len(await worker_pids(on_cluster)) == 2  # the nanny restarted it, for what follows


async def test_executor_dask_in_generated_code(on_cluster):
    b = AsyncWorkflowBuilder("explicit")
    b.add_parallel_map("sq", SQUARE, max_workers=8, executor="dask", continue_on_error=True)
    envelope = await compiled(b).run({"items": list(range(100))})
    assert len(envelope["results"]["sq"]["results"]) == 85
    assert result_pids(envelope) <= await worker_pids(on_cluster)


async def test_a_lost_scheduler_fails_the_items_left_and_loses_none(monkeypatch):
    monkeypatch.delenv(DASK_SCHEDULER_ENV, raising=False)
    doomed = distributed.LocalCluster(
        n_workers=1, processes=True, threads_per_worker=1, dashboard_address=":0"
    )
    b = AsyncWorkflowBuilder("lost")
    b.add_parallel_map(
        "wait", "async def process_item(x):\n    await asyncio.sleep(0.01)\n    return x\n"
    )
    process_item = await compiled(b).functions_wait()
    closer = threading.Thread(target=doomed.close)

    def progress(done: int, total: int | None) -> None:
        if done >= 200 and closer.ident is None:
            closer.start()  # the cluster goes away mid-map, for good

    # The client gives up reconnecting after the connect timeout (30 s by default). The outer
    # timeout only turns a hang (futures of a closed client never resolve) into a failure.
    with dask.config.set({"distributed.comm.timeouts.connect": "3s"}):
        async with asyncio.timeout(120):
            out = await parallel_map(
                process_item,
                range(2000),
                max_workers=4,
                continue_on_error=True,
                executor=DaskExecutor(doomed.scheduler_address),
                progress=progress,
            )
    closer.join()

    assert 200 <= len(out["results"]) < 2000
    failed = [error["index"] for error in out["errors"]]
    assert sorted(out["results"] + failed) == list(range(2000))


def run_python(source: str, tmp_path: Path) -> str:
    script = tmp_path / "script.py"  # a real file: `python script.py`, module __main__
    script.write_text(textwrap.dedent(source))
    env = {k: v for k, v in os.environ.items() if k != DASK_SCHEDULER_ENV}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_without_dask_nothing_of_dask_is_imported(tmp_path):
    out = run_python(
        """
        import asyncio, sys
        from kflow import AsyncWorkflowBuilder
        from kflow.runtime import AsyncLocalRuntime

        b = AsyncWorkflowBuilder("plain")
        b.add_parallel_map("a", "async def process_item(x):\\n    return x + 1\\n")
        b.add_parallel_map("t", "def process_item(x):\\n    return x + 2\\n")
        b.add_parallel_map("p", "def process_item(x):\\n    return x + 3\\n", executor="process")
        if __name__ == "__main__":
            module = AsyncLocalRuntime().module(b.build())
            envelope = asyncio.run(module.run({"items": [1, 2, 3]}))
            assert envelope["results"]["p"]["results"] == [4, 5, 6], envelope
            print(sorted(m for m in sys.modules
                         if m.split(".")[0] in ("dask", "distributed")
                         or m.endswith("dask_executor")))
        """,
        tmp_path,
    )
    assert out.strip() == "[]"


def test_executor_dask_starts_a_local_cluster_and_closes_it_at_exit(tmp_path):
    out = run_python(
        """
        import asyncio, json, os
        from kflow_runtime.patterns import parallel_map
        from kflow_runtime.patterns.dask_executor import local_cluster

        def double(x):  # defined in __main__: reaches the workers by value
            return [x * 2, os.getpid()]

        async def main():
            out = await parallel_map(double, range(200), max_workers=2, executor="dask")
            print(json.dumps({
                "values": [v for v, _ in out["results"]],
                "pids": sorted({pid for _, pid in out["results"]}),
                "workers": len(local_cluster().workers),
            }))

        if __name__ == "__main__":
            asyncio.run(main())
        """,
        tmp_path,
    )
    report = json.loads(out.splitlines()[-1])
    assert report["values"] == [x * 2 for x in range(200)]
    assert report["workers"] == os.cpu_count()
    assert os.getpid() not in report["pids"]
    # Closed at exit: its worker processes are gone (give the OS a moment to reap them).
    deadline = time.monotonic() + 30
    while (alive := [pid for pid in report["pids"] if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert alive == []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead, only not reaped yet
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


async def test_run_many_spreads_runs_over_the_cluster(on_cluster):
    builder = AsyncWorkflowBuilder("many_on_dask")
    builder.add_async_code("work", "result = {'n': n * 2, 'pid': os.getpid()}")
    module = AsyncLocalRuntime().module(builder.build())
    envelopes = await module.run_many([{"n": n} for n in range(200)], max_concurrency=8)
    assert [e["results"]["work"]["n"] for e in envelopes] == [n * 2 for n in range(200)]
    pids = {e["results"]["work"]["pid"] for e in envelopes}
    assert os.getpid() not in pids and len(pids) == 2  # both cluster workers ran some


async def test_dask_scheduler_flag_of_a_shipped_module(cluster, tmp_path):
    from kflow import compile_workflow

    b = AsyncWorkflowBuilder("flag")
    b.add_parallel_map("cube", CUBE, max_workers=4, continue_on_error=True)
    module = tmp_path / "out.py"
    module.write_text(compile_workflow(b.build()).source)
    env = {k: v for k, v in os.environ.items() if k != DASK_SCHEDULER_ENV}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(module), "--dask-scheduler", cluster.scheduler_address,
         "--inputs", json.dumps({"items": list(range(40))})],
        capture_output=True, text=True, timeout=180, env=env,
    )
    assert done.returncode == 0, done.stderr
    output = json.loads(done.stdout)["results"]["cube"]
    assert [r["v"] for r in output["results"]] == [x ** 3 for x in range(40) if x % 7 != 3]
    assert {r["pid"] for r in output["results"]} <= await worker_pids(cluster)
