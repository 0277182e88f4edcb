"""SIGTERM and SIGINT stop a generated module cleanly: running nodes are cancelled, every
resource is closed (an open transaction rolled back by the driver, not by the server
noticing the connection drop), the envelope is printed with the cancelled nodes, one line
goes to stderr, and the exit code is 128 + the signal (issue 11, part 4)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest
from services import REPO, PostgresInstance, settle

from kflow import AsyncWorkflowBuilder, compile_workflow

pytestmark = pytest.mark.services


def transaction_workflow(port: int, app_name: str) -> str:
    builder = AsyncWorkflowBuilder("signalled")
    builder.with_database("db", host="127.0.0.1", port=port, database="postgres",
                          user="postgres", max_size=2,
                          server_settings={"application_name": app_name})
    builder.add_async_code("tx", """
async with db.acquire() as conn:
    async with conn.transaction():
        await conn.execute(f"INSERT INTO {table} VALUES (1)")
        await asyncio.sleep(3600)
result = "committed"
""")
    builder.add_async_code("after", "result = value")
    builder.add_connection("tx", "result", "after", "value")
    builder.add_async_code("quick", "result = 1")
    return compile_workflow(builder.build()).source


async def start(module: Path, *args: str) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return await asyncio.create_subprocess_exec(
        sys.executable, str(module), *args, cwd=str(module.parent), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


async def in_transaction(server: PostgresInstance, app_name: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(server.dsn)
    try:
        return int(await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 "
            "AND state = 'idle in transaction'", app_name))
    finally:
        await conn.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_signal_cancels_the_run_rolls_back_and_prints_the_envelope(
    fault_pg: PostgresInstance, unique_name: str, tmp_path: Path, signum: int,
) -> None:
    import asyncpg

    table = unique_name
    conn = await asyncpg.connect(fault_pg.dsn)
    await conn.execute(f"CREATE TABLE {table} (n int)")
    module = tmp_path / "out.py"
    module.write_text(transaction_workflow(fault_pg.port, unique_name))
    trace = tmp_path / "trace.json"
    proc = await start(module, "--inputs", json.dumps({"table": table}), "--trace", str(trace))
    try:
        assert await settle(lambda: in_transaction(fault_pg, unique_name), 1) == 1
        proc.send_signal(signum)
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    name = signal.Signals(signum).name
    assert proc.returncode == 128 + signum
    assert err.decode() == f"interrupted by {name}: cancelled nodes 'tx'; resources closed\n"
    envelope = json.loads(out)
    assert envelope["status"] == "cancelled"
    assert envelope["cancelled"] == ["tx"]
    assert envelope["errors"] == {
        "tx": "CancelledError: the run was cancelled while this node was running"}
    assert envelope["results"] == {"quick": 1}
    assert envelope["skipped"] == ["after"]
    # The trace was written too, its run span marked cancelled.
    spans = [e for e in json.loads(trace.read_text())["traceEvents"] if e.get("cat") == "run"]
    assert [s["args"]["status"] for s in spans] == ["cancelled"]

    # The driver rolled the transaction back and closed the connections itself.
    assert await settle(lambda: fault_pg.backends(unique_name), 0) == 0
    assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0
    await conn.close()
    ours = [line for line in fault_pg.log().splitlines() if f"app={unique_name} " in line]
    assert any("statement: ROLLBACK" in line for line in ours), "\n".join(ours)
    assert not any("unexpected EOF" in line for line in ours), "\n".join(ours)


async def test_a_second_signal_exits_at_once(tmp_path: Path) -> None:
    builder = AsyncWorkflowBuilder("stubborn")
    # Node code that ignores cancellation, so the clean-up after the first signal never ends.
    builder.add_async_code("stubborn", """
import sys
print("ready", file=sys.stderr, flush=True)
while True:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        print("ignored", file=sys.stderr, flush=True)
""", timeout=None)
    module = tmp_path / "out.py"
    module.write_text(compile_workflow(builder.build()).source)
    proc = await start(module)
    assert proc.stderr is not None
    try:
        async with asyncio.timeout(30):
            assert await proc.stderr.readline() == b"ready\n"
            proc.send_signal(signal.SIGINT)
            assert await proc.stderr.readline() == b"ignored\n"
            proc.send_signal(signal.SIGINT)
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 130
    assert err.decode() == "SIGINT again: exiting without waiting for clean-up\n"
    assert out == b""
