"""``runs list|show ID|gc --older-than AGE --checkpoint URL``: what a user sees."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kflow_runtime.checkpoint import open_run, runs_main


def fill(url: str) -> None:
    async def go() -> None:
        for run_id, finish in (("older", True), ("newer", False)):
            session = await open_run(url, run_id=run_id, workflow="etl", inputs={"day": 1},
                                     fingerprints={"load": "1", "save": "2"},
                                     upstream={"save": ["load"]})
            async with session:
                await session.node_done("load", output=[1, 2], attempts=2, duration=0.5)
                await session.node_done("save", output=None, error="OSError: disk full")
                if finish:
                    await session.finish({"status": "failed"})
            time.sleep(0.01)  # distinct start times: newest first is well defined

    asyncio.run(go())


@pytest.fixture
def url(tmp_path: Path) -> str:
    path = str(tmp_path / "runs.db")
    fill(path)
    return path


def test_list_shows_runs_newest_first_with_status_and_duration(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert runs_main(["list", "--checkpoint", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["RUN", "ID", "WORKFLOW", "STATUS", "STARTED", "(UTC)", "DURATION",
                                "NODES", "STARTS"]
    assert [line.split()[:3] for line in lines[1:]] == [["newer", "etl", "running"],
                                                         ["older", "etl", "failed"]]
    assert all(line.split()[-2:] == ["2", "1"] for line in lines[1:])


def test_list_as_json_lines(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert runs_main(["--checkpoint", url, "list", "--json", "--limit", "1"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    run = json.loads(line)
    assert (run["run_id"], run["status"], run["stored_nodes"]) == ("newer", "running", 2)
    assert run["duration"] is None and "envelope" not in run  # still running


def test_show_one_run_with_its_nodes(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert runs_main(["show", "newer", "--checkpoint", url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "run newer  workflow 'etl'  running"
    assert out[3:] == ["  load: success, 2 attempts, 0.5s",
                       "  save: failed, 1 attempt, 0s, error: OSError: disk full"]


def test_show_as_json_has_the_envelope_and_outputs(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert runs_main(["show", "older", "--json", "--checkpoint", url]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["envelope"] == {"status": "failed"}
    assert [(n["node_id"], n["status"], n["output"]) for n in shown["nodes"]] == [
        ("load", "success", None), ("save", "failed", None)]  # the envelope holds outputs


def test_gc_deletes_old_runs_and_says_what(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert runs_main(["gc", "--older-than", "7d", "--checkpoint", url]) == 0
    assert capsys.readouterr().out == (
        "deleted 0 runs idle for more than 7d (0 node outcomes, 0 item chunks)\n")
    time.sleep(0.05)
    assert runs_main(["gc", "--older-than", "0s", "--checkpoint", url]) == 0
    assert capsys.readouterr().out == (
        "deleted 2 runs idle for more than 0s (4 node outcomes, 0 item chunks)\n")
    assert runs_main(["list", "--checkpoint", url]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


@pytest.mark.parametrize(("argv", "message"), [
    (["list"], "error: no store given: pass --checkpoint URL or set KFLOW_CHECKPOINT\n"),
    (["show", "nope", "--checkpoint", "URL"], "error: no run 'nope' in {url}\n"),
    (["gc", "--older-than", "7 days", "--checkpoint", "URL"],
     "error: bad duration '7 days': write a number and a unit, like 30s, 15m, 12h, 7d or 2w\n"),
    (["list", "--checkpoint", "mysql://u:pw@h/db"],
     "error: checkpoint store mysql://u:***@h/db: unsupported scheme 'mysql'; use a file path, "
     "sqlite:///path or postgresql://...\n"),
])
def test_bad_input_exits_2_with_one_line(
    url: str, argv: list[str], message: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KFLOW_CHECKPOINT", raising=False)
    argv = [url if arg == "URL" else arg for arg in argv]
    assert runs_main(argv) == 2
    assert capsys.readouterr().err == message.format(url=url)


def test_the_store_comes_from_kflow_checkpoint_in_a_real_process(url: str) -> None:
    env = {**os.environ, "KFLOW_CHECKPOINT": url}
    done = subprocess.run([sys.executable, "-m", "kflow_runtime.checkpoint.cli", "list"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()[1:]] == ["newer", "older"]
