"""Run ownership across real processes: one owner per run id, and a SIGKILLed owner leaves the
run free to resume. Each "process" is a separate Python interpreter running CLAIMER."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kflow_runtime.checkpoint import RunBusy, open_run, open_store

CLAIMER = textwrap.dedent("""
    import asyncio, sys
    from kflow_runtime.checkpoint import RunBusy, open_run

    url, run_id, mode = sys.argv[1:4]

    async def main():
        try:
            session = await open_run(url, run_id=run_id, workflow="w", inputs={},
                                     fingerprints={"a": "1", "b": "2"}, upstream={"b": ["a"]})
        except RunBusy as exc:
            print("busy", exc, flush=True)
            return 3
        async with session:
            if mode == "commit-a":
                await session.node_done("a", output={"n": 1})
            print("claimed", session.action, ",".join(session.resumed), flush=True)
            if mode != "once":
                # Hold the claim until the test closes our stdin (or kills us).
                await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        return 0

    sys.exit(asyncio.run(main()))
""")





class Claimer:
    """A separate process that claims a run id; `line` is what it said first."""

    def __init__(self, script: Path, url: str, run_id: str, mode: str = "hold") -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(script), url, run_id, mode],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def first_line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        assert line, f"claimer said nothing; stderr: {self.proc.stderr.read() if self.proc.stderr else ''}"
        return line

    def let_go(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(timeout=60)

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=60)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def claimers(tmp_path: Path) -> Iterator[Any]:
    script = tmp_path / "claimer.py"
    script.write_text(CLAIMER)
    started: list[Claimer] = []

    def spawn(url: str, run_id: str = "r1", mode: str = "hold") -> Claimer:
        claimer = Claimer(script, url, run_id, mode)
        started.append(claimer)
        return claimer

    yield spawn
    for claimer in started:
        claimer.close()


def claim_after_kill(spawn: Any, url: str) -> str:
    """Claim again once the killed owner's lock is gone. SQLite: at once (the kernel drops
    fcntl locks as the process dies). PostgreSQL: once the server has seen the connection
    close, a moment later; a generous bound keeps this from depending on timing."""
    deadline = time.monotonic() + 30
    while True:
        line = spawn(url, mode="once").first_line()
        if not line.startswith("busy") or time.monotonic() > deadline:
            return line
        time.sleep(0.1)


def test_a_second_process_resuming_a_held_run_gets_a_clear_error(
    store_url: str, claimers: Any
) -> None:
    owner = claimers(store_url)
    assert owner.first_line() == "claimed start"
    line = claimers(store_url, mode="once").first_line()
    assert line.startswith("busy checkpoint store ")
    assert "run 'r1' is running in another process: " in line
    assert f":{owner.proc.pid} holds it (claimed " in line
    assert line.endswith("wait for it to end, or pass another --run-id")
    assert owner.let_go() == 0
    assert claimers(store_url, mode="once").first_line() == "claimed resume"


def test_racing_processes_never_both_own_a_run(store_url: str, claimers: Any) -> None:
    async def create_schema() -> None:  # so the race is about the claim, not the first open
        async with await open_store(store_url):
            pass

    asyncio.run(create_schema())
    racers = [claimers(store_url) for _ in range(4)]
    lines = [racer.first_line() for racer in racers]  # every racer answered while all live
    assert sum(line.startswith("claimed") for line in lines) == 1, lines
    assert sum(line.startswith("busy") for line in lines) == 3, lines


def test_a_sigkilled_owner_leaves_the_run_free_to_resume_with_its_outcomes(
    store_url: str, claimers: Any
) -> None:
    owner = claimers(store_url, mode="commit-a")
    assert owner.first_line() == "claimed start"  # after committing node a; the claim is held
    owner.kill()
    assert claim_after_kill(claimers, store_url) == "claimed resume a"


def test_a_process_is_refused_a_run_another_process_holds(store_url: str, claimers: Any) -> None:
    owner = claimers(store_url)
    assert owner.first_line() == "claimed start"

    async def attempt() -> None:
        await open_run(store_url, run_id="r1", workflow="w", inputs={},
                       fingerprints={"a": "1"}, upstream={})

    with pytest.raises(RunBusy, match="run 'r1' is running in another process"):
        asyncio.run(attempt())
    owner.kill()
