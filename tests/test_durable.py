"""Durable runs end to end (issue 12): generated modules run as processes with
``--checkpoint`` on a real SQLite file and the real PostgreSQL, SIGKILLed from inside a node,
and resumed with the same ``--run-id``.

Every node appends its id to a log file (``DURABLE_LOG``) as it starts, and kills its own
process with SIGKILL when ``DURABLE_KILL`` names it, so the log says exactly what ran how often.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.services import REPO

CHAIN = ("n1", "n2", "n3", "n4", "n5")
INPUTS = json.dumps({"start": ["in"]})

# One node's code: log, maybe die, then add its name (and its tag) to the path it was given.
STEP = '''
import os, signal
with open(os.environ["DURABLE_LOG"], "a") as log:
    log.write("{name}\\n")
if os.environ.get("DURABLE_KILL") == "{name}":
    os.kill(os.getpid(), signal.SIGKILL)
if os.environ.get("DURABLE_HOLD") == "{name}":
    while not os.path.exists(os.environ["DURABLE_RELEASE"]):
        await asyncio.sleep(0.02)
result = {{"path": {source} + ["{name}{tag}"]}}
'''

WORKFLOW = '''
from kailash.workflow import AsyncWorkflowBuilder

STEP = {step!r}
builder = AsyncWorkflowBuilder("durable_{shape}")
for name, sources in {edges!r}:
    if not sources:
        source = "list(start)"
    else:
        source = " + ".join(f"{{s}}['path']" for s in sources)
    builder.add_async_code(name, STEP.format(name=name, source=source,
                                             tag={tags!r}.get(name, "")))
    for s in sources:
        builder.add_connection(s, "result", name, s)
workflow = builder.build()
'''

# a -> b, a -> c, (b, c) -> d, d -> e
BRANCHING = (("a", ()), ("b", ("a",)), ("c", ("a",)), ("d", ("b", "c")), ("e", ("d",)))
LINEAR = tuple((name, (CHAIN[i - 1],) if i else ()) for i, name in enumerate(CHAIN))

# The fields that belong to one run, not to what it computed.
RUN_SPECIFIC = {"execution_times", "total_duration", "run_id", "resumed"}
KFLOWC = "import sys; from kflow.cli import main; sys.exit(main())"


def build(folder: Path, edges: tuple[tuple[str, tuple[str, ...]], ...], *,
          tags: dict[str, str] | None = None, shape: str = "chain") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "workflow.py"
    source.write_text(WORKFLOW.format(step=STEP, edges=edges, tags=tags or {}, shape=shape))
    out = folder / "out.py"
    done = subprocess.run([sys.executable, "-c", KFLOWC, "build", str(source), "-o", str(out)],
                          capture_output=True, text=True, cwd=folder, timeout=120)
    assert done.returncode == 0, done.stderr
    return out


class Runner:
    """Runs one generated module against one store, with one execution log."""

    def __init__(self, module: Path, store: str, log: Path) -> None:
        self.module, self.store, self.log = module, store, log

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KFLOW_", "DURABLE_"))}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env["DURABLE_LOG"] = str(self.log)
        env.update(extra)
        return env

    def args(self, run_id: str | None, inputs: str) -> list[str]:
        args = [sys.executable, str(self.module), "--inputs", inputs, "--checkpoint", self.store]
        return [*args, "--run-id", run_id] if run_id else args

    def __call__(self, run_id: str | None = "r1", *, inputs: str = INPUTS,
                 **env: str) -> tuple[int, dict[str, Any] | None, str]:
        done = subprocess.run(self.args(run_id, inputs), capture_output=True, text=True,
                              env=self.env(**env), cwd=self.module.parent, timeout=120)
        envelope = json.loads(done.stdout) if done.stdout.strip() else None
        return done.returncode, envelope, done.stderr

    def ran(self) -> Counter[str]:
        return Counter(self.log.read_text().split()) if self.log.exists() else Counter()


def same_outcome(one: dict[str, Any], other: dict[str, Any]) -> bool:
    def computed(envelope: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in envelope.items() if k not in RUN_SPECIFIC}

    return (computed(one) == computed(other)
            and set(one["execution_times"]) == set(other["execution_times"]))


def stored_nodes(store: str, run_id: str) -> set[str]:
    """The nodes whose outcome the store holds for `run_id` (``runs show --json``)."""
    done = subprocess.run([sys.executable, "-m", "kflow_runtime.checkpoint.cli", "show", run_id,
                           "--json", "--checkpoint", store], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    return {node["node_id"] for node in json.loads(done.stdout)["nodes"]}


@pytest.fixture(scope="module")
def chain_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("chain"), LINEAR)


@pytest.fixture(scope="module")
def baseline(chain_module: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The envelope of an uninterrupted run (with a store of its own)."""
    folder = tmp_path_factory.mktemp("baseline")
    code, envelope, err = Runner(chain_module, str(folder / "runs.db"), folder / "log")()
    assert code == 0, err
    assert envelope is not None and envelope["resumed"] == []
    return envelope


# --------------------------------------------------------------------------- kill matrix


@pytest.mark.parametrize("kill", CHAIN)
def test_kill_matrix_each_node_runs_once_except_the_killed_one(
    kill: str, chain_module: Path, baseline: dict[str, Any], store_url: str, tmp_path: Path
) -> None:
    run = Runner(chain_module, store_url, tmp_path / "log")
    code, envelope, err = run(DURABLE_KILL=kill)
    assert code == -9, err
    assert envelope is None

    code, resumed, err = run()
    assert code == 0, err
    assert resumed is not None and same_outcome(resumed, baseline)
    before = list(CHAIN[: CHAIN.index(kill)])
    assert resumed["resumed"] == before
    assert resumed["results"]["n5"] == {"path": ["in", *CHAIN]}
    assert "resuming run 'r1' from " in err and f"{len(before)} of 5 nodes restored" in err
    assert run.ran() == Counter({node: 2 if node == kill else 1 for node in CHAIN})

    code, third, err = run()
    assert code == 0, err
    assert third == resumed  # the stored envelope, as it was
    assert "already finished" in err and "nothing runs" in err
    assert run.ran() == Counter({node: 2 if node == kill else 1 for node in CHAIN})


@pytest.mark.parametrize("kill", ["b", "c", "d"])
def test_branching_dag_no_node_stored_before_the_kill_runs_again(
    kill: str, store_url: str, tmp_path: Path
) -> None:
    module = build(tmp_path / "dag", BRANCHING, shape="dag")
    clean = Runner(module, str(tmp_path / "clean.db"), tmp_path / "clean.log")()
    assert clean[0] == 0, clean[2]
    run = Runner(module, store_url, tmp_path / "log")
    code, _, err = run(DURABLE_KILL=kill)
    assert code == -9, err
    stored = stored_nodes(store_url, "r1")
    assert kill not in stored and "a" in stored
    first = run.ran()

    code, envelope, err = run()
    assert code == 0, err
    assert envelope is not None and same_outcome(envelope, clean[1])
    assert set(envelope["resumed"]) == stored
    again = run.ran() - first
    assert not set(again) & stored, (again, stored)
    assert again[kill] == 1
    assert set(run.ran()) == {"a", "b", "c", "d", "e"}

    # Finished: the stored envelope, nothing runs (branches waiting on others included).
    before = run.ran()
    code, third, err = run()
    assert code == 0, err
    assert third == envelope and run.ran() == before


# --------------------------------------------------------------------------- maps


MAP_WORKFLOW = '''
from kailash.workflow import AsyncPatterns, AsyncWorkflowBuilder

builder = AsyncWorkflowBuilder("durable_map")
builder.add_async_code("load", "result = list(range(2000))")
builder.add_parallel_map(
    "square",
    """
    import os, signal
    async def process_item(index):
        with open(os.environ["DURABLE_LOG"], "a") as log:
            log.write(f"{index}\\\\n")
        if os.environ.get("DURABLE_KILL") == str(index):
            os.kill(os.getpid(), signal.SIGKILL)
        await asyncio.sleep(0)
        if index % 97 == 5:
            raise ValueError(f"item {index} is unlucky")
        return {"square": index * index}
    """,
    max_workers=10,
    continue_on_error=True,
)
builder.add_connection("load", "result", "square", "items")
builder.add_async_code("load_batches", "result = list(range(100))")
AsyncPatterns.batch_processor(
    builder,
    "batches",
    """
    import os, signal
    with open(os.environ["DURABLE_BATCH_LOG"], "a") as log:
        log.write(f"{items[0]}\\\\n")
    if os.environ.get("DURABLE_KILL_BATCH") == str(items[0]):
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("DURABLE_FAIL_BATCH") == str(items[0]):
        raise ValueError(f"batch at {items[0]} fails")
    batch_results = [n * 10 for n in items]
    """,
    batch_size=10,
)
builder.add_connection("load_batches", "result", "batches", "items")
workflow = builder.build()
'''


@pytest.fixture(scope="module")
def map_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("map")
    source = folder / "workflow.py"
    source.write_text(MAP_WORKFLOW)
    out = folder / "out.py"
    done = subprocess.run([sys.executable, "-c", KFLOWC, "build", str(source), "-o", str(out)],
                          capture_output=True, text=True, cwd=folder, timeout=120)
    assert done.returncode == 0, done.stderr
    return out


def map_runner(module: Path, store: str, tmp_path: Path) -> Runner:
    run = Runner(module, store, tmp_path / "items.log")
    extra = run.env
    run.env = lambda **env: extra(DURABLE_BATCH_LOG=str(tmp_path / "batches.log"), **env)
    return run


def test_a_map_of_2000_items_killed_at_item_1000_resumes_them_in_order(
    map_module: Path, store_url: str, tmp_path: Path
) -> None:
    clean = map_runner(map_module, str(tmp_path / "clean.db"), tmp_path / "clean")
    (tmp_path / "clean").mkdir()
    code, expected, err = clean(inputs="{}")
    assert code == 0, err
    assert expected is not None
    run = map_runner(map_module, store_url, tmp_path)

    code, _, err = run(inputs="{}", DURABLE_KILL="1000")
    assert code == -9, err
    code, envelope, err = run(inputs="{}")
    assert code == 0, err
    assert envelope is not None
    square = envelope["results"]["square"]
    assert square["results"] == expected["results"]["square"]["results"]
    assert square["errors"] == expected["results"]["square"]["errors"]
    assert len(square["results"]) == 2000 - len(square["errors"])
    keep = ("total", "successful", "failed", "max_workers")
    assert ({k: square["statistics"][k] for k in keep}
            == {k: expected["results"]["square"]["statistics"][k] for k in keep})
    executions = (tmp_path / "items.log").read_text().split()
    assert len(set(executions)) == 2000
    assert len(executions) <= 2200, len(executions)


def killed_at_batch_60(map_module: Path, store_url: str, tmp_path: Path) -> Runner:
    """The map module's runner, after a run killed in the batch that starts at item 60."""
    run = map_runner(map_module, store_url, tmp_path)
    code, _, err = run(inputs="{}", DURABLE_KILL_BATCH="60")
    assert code == -9, err
    return run


def test_a_batch_processor_killed_midway_skips_the_stored_batches(
    map_module: Path, store_url: str, tmp_path: Path
) -> None:
    run = killed_at_batch_60(map_module, store_url, tmp_path)
    code, envelope, err = run(inputs="{}")
    assert code == 0, err
    assert envelope is not None
    assert envelope["results"]["batches"] == {
        "results": [n * 10 for n in range(100)], "processed_count": 100, "batches": 10,
    }
    starts = Counter((tmp_path / "batches.log").read_text().split())
    assert set(starts) == {str(n) for n in range(0, 100, 10)}
    assert starts["60"] == 2
    # Each batch is written as it ends; at most the one in flight at the kill runs again.
    assert sum(starts.values()) <= 10 + 2, starts


def test_a_batch_failing_after_a_resume_counts_from_the_start_of_the_input(
    map_module: Path, store_url: str, tmp_path: Path
) -> None:
    run = killed_at_batch_60(map_module, store_url, tmp_path)
    code, envelope, err = run(inputs="{}", DURABLE_FAIL_BATCH="70")
    assert envelope is not None, err
    message = envelope["errors"]["batches"]
    assert "batch 7 (items 70-79 of the input" in message, message
    assert "70 items in 7 earlier batches were processed" in message, message
    assert envelope["partial"]["batches"] == {
        "results": [n * 10 for n in range(70)], "processed_count": 70, "batches": 7,
        "failed_batch": {"index": 7, "items": list(range(70, 80))},
    }


# --------------------------------------------------------------------------- changes, refusals


def test_a_changed_node_and_what_it_feeds_run_again_and_stderr_says_why(
    tmp_path: Path
) -> None:
    store, log = str(tmp_path / "runs.db"), tmp_path / "log"
    before = build(tmp_path / "v1", LINEAR)
    code, _, err = Runner(before, store, log)(DURABLE_KILL="n4")
    assert code == -9, err
    after = build(tmp_path / "v2", LINEAR, tags={"n2": "*"})
    run = Runner(after, store, log)
    code, envelope, err = run()
    assert code == 0, err
    assert envelope is not None and envelope["resumed"] == ["n1"]
    assert envelope["results"]["n5"] == {"path": ["in", "n1", "n2*", "n3", "n4", "n5"]}
    assert "node 'n2' runs again: it changed since the stored run" in err
    assert "node 'n3' runs again: upstream node 'n2' changed since the stored run" in err
    assert run.ran() == Counter({"n1": 1, "n2": 2, "n3": 2, "n4": 2, "n5": 1})


def test_other_inputs_are_refused_with_exit_2_and_nothing_is_lost(
    chain_module: Path, tmp_path: Path
) -> None:
    run = Runner(chain_module, str(tmp_path / "runs.db"), tmp_path / "log")
    assert run(DURABLE_KILL="n3")[0] == -9
    code, envelope, err = run(inputs=json.dumps({"start": ["other"]}))
    assert code == 2 and envelope is None
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert "run 'r1' was started with other inputs" in lines[0]
    assert "resume it with the inputs it started with, or pass another --run-id" in lines[0]
    assert run.ran() == Counter({"n1": 1, "n2": 1, "n3": 1})
    code, envelope, err = run()
    assert code == 0, err
    assert envelope is not None and envelope["resumed"] == ["n1", "n2"]


def test_a_second_process_on_a_running_run_id_is_refused_and_nothing_runs_twice(
    chain_module: Path, store_url: str, tmp_path: Path
) -> None:
    run = Runner(chain_module, store_url, tmp_path / "log")
    release = tmp_path / "release"
    first = subprocess.Popen(
        run.args("r1", INPUTS), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=run.env(DURABLE_HOLD="n2", DURABLE_RELEASE=str(release)), cwd=tmp_path,
    )
    try:
        for _ in range(600):
            if run.ran()["n2"]:
                break
            time.sleep(0.05)
        assert run.ran()["n2"] == 1
        code, envelope, err = run()
        assert code == 2 and envelope is None
        assert "run 'r1' is running in another process" in err
        assert "wait for it to end, or pass another --run-id" in err
        assert len(err.strip().splitlines()) == 1
    finally:
        release.touch()
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert json.loads(out)["status"] == "success"
    assert run.ran() == Counter(dict.fromkeys(CHAIN, 1))


def test_a_corrupt_sqlite_file_is_a_clear_error(chain_module: Path, tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    store.write_bytes(b"this is not a database" * 100)
    code, envelope, err = Runner(chain_module, str(store), tmp_path / "log")()
    assert code == 2 and envelope is None
    assert err.strip().splitlines() == [
        f"error: checkpoint store {store}: the file is not a SQLite database or is damaged "
        "(file is not a database); move it aside and point --checkpoint at a new file"
    ]
    assert not (tmp_path / "log").exists()


def test_a_locked_sqlite_file_is_a_clear_error_and_the_run_resumes_after(
    chain_module: Path, tmp_path: Path
) -> None:
    path = tmp_path / "runs.db"
    url = f"sqlite:///{path}?timeout=0.5"
    run = Runner(chain_module, url, tmp_path / "log")
    assert run(DURABLE_KILL="n2")[0] == -9
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process's write transaction, left open
        code, envelope, err = run()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 2 and envelope is None
    assert "stayed locked by another process for 0.5 s" in err, err
    assert len(err.strip().splitlines()) == 1
    assert run.ran() == Counter({"n1": 1, "n2": 1})
    code, envelope, err = run()
    assert code == 0, err
    assert envelope is not None and envelope["resumed"] == ["n1"]


@pytest.mark.services
def test_postgresql_down_at_resume_is_a_clear_error_and_nothing_is_lost(
    chain_module: Path, fault_pg: Any, tmp_path: Path
) -> None:
    url = f"{fault_pg.dsn}?schema=kflow_durable_down"
    run = Runner(chain_module, url, tmp_path / "log")
    assert run(DURABLE_KILL="n3")[0] == -9
    fault_pg.stop()
    try:
        code, envelope, err = run()
    finally:
        fault_pg.start()
    assert code == 2 and envelope is None
    assert "cannot connect" in err and "postgres@127.0.0.1" in err
    assert len(err.strip().splitlines()) == 1
    assert run.ran() == Counter({"n1": 1, "n2": 1, "n3": 1})
    code, envelope, err = run()
    assert code == 0, err
    assert envelope is not None and envelope["resumed"] == ["n1", "n2"]


# --------------------------------------------------------------------------- plumbing


def test_without_a_store_nothing_of_it_is_imported(chain_module: Path, tmp_path: Path) -> None:
    check = textwrap.dedent(f"""
        import asyncio, sys
        sys.path.insert(0, {str(chain_module.parent)!r})
        import out
        envelope = asyncio.run(out.run({{"start": ["in"]}}))
        assert envelope["status"] == "success", envelope
        assert "resumed" not in envelope
        loaded = sorted(m for m in sys.modules
                        if m.startswith(("kflow_runtime.checkpoint", "kflow_runtime.durable"))
                        or m in ("sqlite3", "asyncpg"))
        print(loaded)
    """)
    env = Runner(chain_module, "", tmp_path / "log").env()
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_env_variables_name_the_store_and_the_run_and_runs_list_show_gc_work(
    chain_module: Path, tmp_path: Path
) -> None:
    store = str(tmp_path / "runs.db")
    run = Runner(chain_module, store, tmp_path / "log")
    env = run.env(KFLOW_CHECKPOINT=store, KFLOW_RUN_ID="from-env")
    done = subprocess.run([sys.executable, str(chain_module), "--inputs", INPUTS],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["run_id"] == "from-env"

    def runs(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(chain_module), "runs", *args],
                              capture_output=True, text=True, env=env, timeout=60)

    listing = runs("list")
    assert listing.returncode == 0, listing.stderr
    assert "from-env" in listing.stdout and "success" in listing.stdout
    shown = runs("show", "from-env", "--json")
    assert shown.returncode == 0, shown.stderr
    assert [n["node_id"] for n in json.loads(shown.stdout)["nodes"]] == list(CHAIN)
    kept = runs("gc", "--older-than", "7d")
    assert kept.returncode == 0, kept.stderr
    assert "from-env" in runs("list").stdout
    gone = runs("gc", "--older-than", "0s")
    assert gone.returncode == 0, gone.stderr
    assert "from-env" not in runs("list").stdout
    missing = runs("show", "from-env")
    assert missing.returncode == 2


def test_run_id_without_a_store_is_a_usage_error(chain_module: Path, tmp_path: Path) -> None:
    env = Runner(chain_module, "", tmp_path / "log").env()
    done = subprocess.run([sys.executable, str(chain_module), "--run-id", "x"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2
    assert "--run-id names a run in a checkpoint store: pass --checkpoint URL" in done.stderr
