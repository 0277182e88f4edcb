"""`--inputs-jsonl` streams envelopes in input order as runs end, a bad line gets its own
envelope, and bad options or inputs are usage errors (exit 2), never tracebacks (issue 11,
part 6)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kflow import AsyncWorkflowBuilder, compile_workflow


@pytest.fixture
def module(tmp_path: Path) -> Path:
    builder = AsyncWorkflowBuilder("lines")
    builder.add_async_code("work", """
if n >= hang_from:
    await asyncio.sleep(3600)
elif n == 0:
    await asyncio.sleep(0.2)   # the first run ends last; its line still comes first
result = n * 2
""")
    path = tmp_path / "out.py"
    path.write_text(compile_workflow(builder.build()).source)
    return path


def lines_file(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "runs.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return path


def run_module(module: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(module), *args], capture_output=True, text=True,
                          timeout=120, cwd=module.parent)


def test_envelopes_come_in_input_order(module: Path, tmp_path: Path):
    runs = lines_file(tmp_path, [json.dumps({"n": n, "hang_from": 99}) for n in range(30)])
    done = run_module(module, "--inputs-jsonl", str(runs), "--max-concurrency", "8")
    assert done.returncode == 0, done.stderr
    envelopes = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["results"]["work"] for e in envelopes] == [n * 2 for n in range(30)]


def test_ctrl_c_after_60_finished_runs_keeps_those_60_lines(module: Path, tmp_path: Path):
    runs = lines_file(tmp_path, [json.dumps({"n": n, "hang_from": 60}) for n in range(100)])
    proc = subprocess.Popen(
        [sys.executable, str(module), "--inputs-jsonl", str(runs), "--max-concurrency", "10"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        # The 60 lines arrive while the process still runs: it streams.
        first = [json.loads(proc.stdout.readline()) for _ in range(60)]
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        rest = [json.loads(line) for line in proc.stdout.read().splitlines()]
        err = proc.stderr.read()
        code = proc.wait(60)
    finally:
        proc.kill()
    assert code == 130
    assert [e["results"]["work"] for e in first] == [n * 2 for n in range(60)]
    assert all(e["status"] == "success" for e in first)
    # The ten runs in flight were cancelled, and say so; the other thirty never started.
    assert [e["status"] for e in rest] == ["cancelled"] * 10
    assert all(e["cancelled"] == ["work"] for e in rest)
    assert err == "interrupted by SIGINT: 60 runs finished, 10 cancelled (every one printed)\n"


def test_a_bad_line_gets_its_own_error_envelope_and_the_others_run(module: Path,
                                                                   tmp_path: Path):
    good = '{"n": 1, "hang_from": 9}'
    runs = lines_file(tmp_path, [
        good, "not json", "[1, 2]", "", "[" * 100_000 + "]" * 100_000,
        '{"n": 1' + "0" * 5000 + "}", good,
    ])
    done = run_module(module, "--inputs-jsonl", str(runs))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    envelopes = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["status"] for e in envelopes] == ["success", "failed", "failed", "failed",
                                                "failed", "success"]
    bad = envelopes[1:5]
    assert [e["line"] for e in bad] == [2, 3, 5, 6]
    messages = [e["errors"]["inputs"] for e in bad]
    assert messages[0].startswith(f"InputError: {runs}:2: not valid JSON: Expecting value")
    assert messages[1] == f"InputError: {runs}:3: inputs must be a JSON object, not list"
    assert messages[2].startswith(f"InputError: {runs}:5: JSON nested too deeply to read")
    assert messages[3].startswith(f"InputError: {runs}:6: unreadable JSON: Exceeds the limit")
    assert all(e["workflow"] == "lines" for e in bad)


def test_a_jsonl_line_over_the_size_limit_gets_its_own_envelope(module: Path, tmp_path: Path):
    runs = lines_file(tmp_path, [
        json.dumps({"n": 1, "hang_from": 9, "pad": "x" * (2 * 2**20)}),
        '{"n": 2, "hang_from": 9}',
    ])
    done = run_module(module, "--inputs-jsonl", str(runs), "--max-input-mb", "1")
    assert done.returncode == 2, done.stderr
    first, second = (json.loads(line) for line in done.stdout.splitlines())
    assert first["errors"]["inputs"] == (
        f"InputError: {runs}:1: larger than 1 MiB; raise the limit with --max-input-mb if "
        "that is intended")
    assert second["results"] == {"work": 4}


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_a_max_concurrency_that_is_not_positive_is_a_usage_error(module: Path, tmp_path: Path,
                                                                  value: str):
    runs = lines_file(tmp_path, ['{"n": 1, "hang_from": 9}'])
    done = run_module(module, "--inputs-jsonl", str(runs), "--max-concurrency", value)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"argument --max-concurrency: must be a positive integer, got {value}" in (
        done.stderr.replace("'", "")), done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("watch", [["--progress"], ["--trace", "t.json"]])
def test_progress_or_trace_with_many_runs_is_a_usage_error(module: Path, tmp_path: Path,
                                                           watch: list[str]):
    """Silently ignoring --progress or --trace would leave the user waiting for output."""
    runs = lines_file(tmp_path, ['{"n": 1, "hang_from": 9}'])
    done = run_module(module, "--inputs-jsonl", str(runs), *watch)
    assert done.returncode == 2 and done.stdout == ""
    assert "--progress and --trace watch one run: use them with --inputs or --inputs-file, " \
        "not with --inputs-jsonl" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("inputs", "message"), [
    ('{"n": ' + "[" * 50_000 + "]" * 50_000 + "}", "error: --inputs: JSON nested too deeply"),
    ('{"n": 1' + "0" * 5000 + "}", "error: --inputs: unreadable JSON: Exceeds the limit"),
    ("[1]", "error: --inputs: inputs must be a JSON object, not list"),
])
def test_deeply_nested_or_unreadable_inputs_exit_2_with_a_message(module: Path, inputs: str,
                                                                  message: str):
    done = run_module(module, "--inputs", inputs)
    assert done.returncode == 2
    assert done.stderr.startswith(message), done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_an_inputs_file_over_the_size_limit_exits_2(module: Path, tmp_path: Path):
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"n": 1, "hang_from": 9, "pad": "x" * (3 * 2**20)}))
    done = run_module(module, "--inputs-file", str(big), "--max-input-mb", "2")
    assert done.returncode == 2
    assert done.stderr == (f"error: {big}: larger than 2 MiB; raise the limit with "
                           "--max-input-mb if that is intended\n")


def test_on_a_dask_cluster_lines_still_come_in_order_with_bad_lines_numbered(tmp_path: Path):
    distributed = pytest.importorskip("distributed")
    builder = AsyncWorkflowBuilder("lines_on_dask")
    builder.add_async_code("work", "result = {'n': n * 2, 'pid': os.getpid()}")
    module = tmp_path / "out.py"
    module.write_text(compile_workflow(builder.build()).source)
    lines = [json.dumps({"n": n}) for n in range(30)]
    lines[7] = "{broken"
    runs = lines_file(tmp_path, lines)
    with distributed.LocalCluster(n_workers=1, processes=True, threads_per_worker=1,
                                  dashboard_address=":0") as cluster:
        proc = subprocess.Popen(
            [sys.executable, str(module), "--inputs-jsonl", str(runs), "--max-concurrency", "2",
             "--dask-scheduler", cluster.scheduler_address],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate(timeout=180)
    assert proc.returncode == 2, err
    envelopes = [json.loads(line) for line in out.splitlines()]
    assert len(envelopes) == 30
    assert envelopes[7]["line"] == 8 and envelopes[7]["status"] == "failed"
    good = [e for i, e in enumerate(envelopes) if i != 7]
    assert [e["results"]["work"]["n"] for e in good] == [n * 2 for n in range(30) if n != 7]
    assert proc.pid not in {e["results"]["work"]["pid"] for e in good}  # ran on the cluster
