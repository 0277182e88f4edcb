"""Seeing a run: progress on stderr (plain and live), Chrome traces that nest."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import sys
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
MAP_WORKFLOW = str(GOLDEN / "pattern_parallel_map" / "workflow.py")


def spans(trace: dict) -> tuple[dict, list[dict], list[tuple[dict, dict]]]:
    events = trace["traceEvents"]
    complete = [e for e in events if e["ph"] == "X"]
    (run,) = [e for e in complete if e["cat"] == "run"]
    begins = {e["id"]: e for e in events if e["ph"] == "b"}
    batches = [(begins[e["id"]], e) for e in events if e["ph"] == "e"]
    return run, complete, batches


def inside(inner_start: float, inner_end: float, outer: dict) -> bool:
    # Trace times are rounded to the nanosecond.
    return outer["ts"] - 0.01 <= inner_start and inner_end <= outer["ts"] + outer["dur"] + 0.01


def test_trace_spans_nest_and_cover_the_run(kflowc, tmp_path):
    trace_file = tmp_path / "trace.json"
    code, stdout, _ = kflowc("run", "--quiet", "--trace", str(trace_file), MAP_WORKFLOW,
                             "--inputs", '{"greeting": "Hi"}')
    assert code == 0 and json.loads(stdout)["status"] == "success"
    run, complete, batches = spans(json.loads(trace_file.read_text()))
    nodes = {e["name"]: e for e in complete if e["cat"] == "node"}
    assert set(nodes) == {"load", "enrich"}
    assert run["ts"] == 0 and all(inside(n["ts"], n["ts"] + n["dur"], run) for n in nodes.values())
    assert nodes["load"]["ts"] + nodes["load"]["dur"] <= nodes["enrich"]["ts"] + 0.01
    for attempt in (e for e in complete if e["cat"] == "attempt"):
        node = nodes[attempt["name"].split(" attempt ")[0]]
        assert attempt["tid"] == node["tid"] and inside(attempt["ts"], attempt["ts"] + attempt["dur"], node)
    assert sum(b["args"]["size"] for b, _ in batches) == 6  # every item in some batch
    for begin, end in batches:
        assert begin["name"].startswith("enrich items ") and begin["tid"] == nodes["enrich"]["tid"]
        assert inside(begin["ts"], end["ts"], nodes["enrich"])


def test_one_span_per_attempt(tmp_path):
    from kflow import AsyncLocalRuntime, AsyncPatterns, AsyncWorkflowBuilder
    from kflow_runtime.observe import TraceRecorder

    builder = AsyncWorkflowBuilder("retries")
    AsyncPatterns.retry_with_backoff(builder, "flaky", """
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("again")
        result = 1
    """, max_retries=3, initial_backoff=0.001)
    import asyncio

    recorder = TraceRecorder(str(tmp_path / "t.json"))
    asyncio.run(AsyncLocalRuntime().execute_workflow_async(builder.build(), {"calls": []},
                                                           observer=recorder))
    _, complete, _ = spans(json.loads((tmp_path / "t.json").read_text()))
    attempts = [(e["args"]["attempt"], e["args"]["outcome"]) for e in complete
                if e["cat"] == "attempt"]
    assert attempts == [(1, "failed"), (2, "failed"), (3, "done")]


def test_plain_progress_when_not_a_terminal(kflowc):
    code, stdout, stderr = kflowc("run", MAP_WORKFLOW, "--inputs", '{"greeting": "Hi"}')
    assert code == 0 and json.loads(stdout)["status"] == "success"
    lines = stderr.splitlines()
    assert lines[0].endswith("workflow parallel_map: 2 nodes")
    assert any(line.endswith("load: running") for line in lines)
    assert any("enrich: 6/6 items" in line for line in lines)
    assert any(line.endswith("workflow parallel_map: success") for line in lines)
    assert "\x1b[" not in stderr  # no cursor tricks in a log
    table = "\n".join(lines[lines.index(next(x for x in lines if "node" in x and "status" in x)):])
    assert "load" in table and "enrich" in table and "done" in table


def test_failed_and_skipped_nodes_are_shown(kflowc, write_workflow):
    path = write_workflow(
        """
        from kailash.workflow import AsyncWorkflowBuilder
        builder = AsyncWorkflowBuilder("broken")
        builder.add_async_code("bad", "result = 1 / 0")
        builder.add_async_code("after", "result = x")
        builder.add_connection("bad", "result", "after", "x")
        """
    )
    code, _, stderr = kflowc("run", path)
    assert code == 1
    assert any("bad: failed in" in line and "ZeroDivisionError" in line
               for line in stderr.splitlines())
    assert any(line.endswith("after: skipped") for line in stderr.splitlines())


def test_live_view_in_a_pseudo_terminal(tmp_path):
    main, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "kflow.cli", "run", MAP_WORKFLOW, "--inputs", '{"greeting": "Hi"}'],
        stdin=secondary, stdout=subprocess.PIPE, stderr=secondary, cwd=tmp_path,
        env={**os.environ, "COLUMNS": "100", "TERM": "xterm-256color"},
    )
    os.close(secondary)
    screen = b""
    while True:
        ready, _, _ = select.select([main], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    stdout, _ = process.communicate(timeout=60)
    os.close(main)
    assert process.returncode == 0 and json.loads(stdout)["status"] == "success"
    text = screen.decode(errors="replace")
    assert "\x1b[" in text  # drawn with terminal control sequences
    assert "node" in text and "status" in text and "enrich" in text and "done" in text
    assert "┏" in text  # the summary table, drawn for a terminal


def test_generated_module_progress_and_trace(tmp_path):
    module = tmp_path / "out.py"
    shutil.copy(GOLDEN / "pattern_parallel_map" / "expected.py", module)
    trace_file = tmp_path / "trace.json"
    done = subprocess.run(
        [sys.executable, str(module), "--inputs", '{"greeting": "Hi"}', "--progress",
         "--trace", str(trace_file)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "success"
    assert "enrich: 6/6 items" in done.stderr
    run, complete, batches = spans(json.loads(trace_file.read_text()))
    assert {e["name"] for e in complete if e["cat"] == "node"} == {"load", "enrich"}
    quiet = subprocess.run([sys.executable, str(module), "--inputs", '{"greeting": "Hi"}'],
                           capture_output=True, text=True, timeout=120)
    assert quiet.stderr == ""  # off by default


def test_progress_without_rich_is_plain_lines(tmp_path):
    """kflow-runtime without its [progress] extra: --progress still works, on a terminal too."""
    module = tmp_path / "out.py"
    shutil.copy(GOLDEN / "pattern_parallel_map" / "expected.py", module)
    no_rich = (
        "import runpy, sys; sys.modules['rich'] = None; "
        f"sys.argv = [{str(module)!r}, '--inputs', '{{\"greeting\": \"Hi\"}}', '--progress']; "
        f"runpy.run_path({str(module)!r}, run_name='__main__')"
    )
    main, secondary = pty.openpty()
    process = subprocess.Popen([sys.executable, "-c", no_rich], stdin=secondary,
                               stdout=subprocess.PIPE, stderr=secondary)
    os.close(secondary)
    screen = b""
    while select.select([main], [], [], 60)[0]:
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    stdout, _ = process.communicate(timeout=60)
    os.close(main)
    text = screen.decode(errors="replace")
    assert process.returncode == 0, text
    assert json.loads(stdout)["status"] == "success"
    assert "enrich: 6/6 items" in text and "  enrich: done" in text
    assert "\x1b[" not in text and "Traceback" not in text


def test_run_summary_shows_a_maps_failed_and_timed_out_items(kflowc, write_workflow):
    # Issue 14.16: "done" alone hid 1 of 7 items timing out.
    path = write_workflow(
        '''
        from kailash.workflow import AsyncWorkflowBuilder
        builder = AsyncWorkflowBuilder("maps")
        builder.add_parallel_map("m", """
        async def process_item(item):
            if item == 3:
                await asyncio.sleep(5)
            if item == 5:
                raise ValueError("five")
            return item
        """, timeout_per_item=0.1, continue_on_error=True)
        '''
    )
    code, stdout, stderr = kflowc("run", path, "--inputs", '{"items": [1, 2, 3, 4, 5, 6, 7]}')
    assert code == 0 and json.loads(stdout)["status"] == "success"
    row = next(line for line in stderr.splitlines() if line.startswith("│ m "))
    assert "done" in row and "7 items, 2 failed (1 timed out)" in row


def test_plain_summary_without_rich_shows_the_items_too():
    from kflow_runtime.progress import map_items

    envelope = {"results": {
        "m": {"results": [1], "errors": [{"error_type": "TimeoutError"}],
              "statistics": {"total": 2}},
        "plain": {"statistics": "not a map"},
        "ok": {"results": [1, 2], "errors": [], "statistics": {"total": 2}},
    }}
    assert map_items(envelope) == {"m": "2 items, 1 failed (1 timed out)", "ok": "2 items"}
