"""run_many: many runs in one process, bounded, in order; and --inputs-jsonl."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from kflow import AsyncLocalRuntime, AsyncWorkflowBuilder

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


class InFlight:
    def __init__(self) -> None:
        self.now = self.peak = 0

    def enter(self) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        self.now -= 1


async def test_thousand_runs_keep_order_and_bound_concurrency():
    builder = AsyncWorkflowBuilder("many")
    builder.add_async_code("work", """
        counter.enter()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        counter.leave()
        result = n * 3
    """)
    module = AsyncLocalRuntime().module(builder.build())
    counter = InFlight()
    envelopes = await module.run_many([{"n": n, "counter": counter} for n in range(1000)],
                                      max_concurrency=25)
    assert [e["results"]["work"] for e in envelopes] == [n * 3 for n in range(1000)]
    assert counter.peak == 25
    assert len({e["run_id"] for e in envelopes}) == 1000


def run_module(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(cwd / "out.py"), *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def test_inputs_jsonl(tmp_path):
    (tmp_path / "out.py").write_text((GOLDEN / "unit_testing/expected.py").read_text())
    lines = tmp_path / "inputs.jsonl"
    lines.write_text("".join(json.dumps({"input_value": n}) + "\n" for n in range(5)))
    done = run_module("--inputs-jsonl", str(lines), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    envelopes = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["results"]["test_node"]["value"] for e in envelopes] == [0, 2, 4, 6, 8]

    lines.write_text('{"input_value": 1}\n{"input_value": null}\n')
    done = run_module("--inputs-jsonl", str(lines), "--max-concurrency", "1", cwd=tmp_path)
    assert done.returncode == 1
    assert [json.loads(line)["status"] for line in done.stdout.splitlines()] == [
        "success", "failed"]

    # A bad line gets its own envelope, numbered; the other lines still run (issue 11).
    lines.write_text('{"input_value": 1}\nnot json\n{"input_value": 2}\n')
    done = run_module("--inputs-jsonl", str(lines), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    envelopes = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["status"] for e in envelopes] == ["success", "failed", "success"]
    assert envelopes[1]["line"] == 2
    assert envelopes[1]["errors"]["inputs"].startswith(f"InputError: {lines}:2: not valid JSON")
