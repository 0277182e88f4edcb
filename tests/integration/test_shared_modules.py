"""Three OS processes run the same generated module against the real Redis: one rate
limit and one circuit breaker between them (shared="cache")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import urlsplit

from kflow import compile_workflow
from kflow.loader import load_workflow

RPS = 10
BURST = 3


def build(tmp_path: Path, name: str, body: str) -> Path:
    source = tmp_path / "workflow.py"
    source.write_text(textwrap.dedent(f"""
        from kailash.workflow import AsyncPatterns, AsyncWorkflowBuilder
        builder = AsyncWorkflowBuilder({name!r}).with_cache("cache")
    """) + textwrap.dedent(body))
    module = tmp_path / "out.py"
    module.write_text(compile_workflow(load_workflow(str(source))).source)
    return module


def redis_env(redis_url: str) -> dict[str, str]:
    parts = urlsplit(redis_url)
    return {"KFLOW_CACHE_HOST": parts.hostname or "127.0.0.1",
            "KFLOW_CACHE_PORT": str(parts.port or 6379),
            "KFLOW_CACHE_DB": (parts.path.strip("/") or "0")}


def start(module: Path, inputs_lines: list[dict], env: dict[str, str]) -> subprocess.Popen:
    lines = module.parent / f"inputs-{id(inputs_lines)}.jsonl"
    lines.write_text("".join(json.dumps(i) + "\n" for i in inputs_lines))
    return subprocess.Popen(
        [sys.executable, str(module), "--inputs-jsonl", str(lines), "--max-concurrency", "4"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env},
    )


def envelopes(process: subprocess.Popen) -> list[dict]:
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode in (0, 1), stderr
    return [json.loads(line) for line in stdout.splitlines()]


def test_three_processes_share_one_rate_limit(tmp_path, redis_url, unique_name):
    module = build(tmp_path, unique_name, f"""
        AsyncPatterns.rate_limited(builder, "tick", "result = time.time()",
                                   requests_per_second={RPS}, burst_size={BURST}, shared="cache")
    """)
    env = redis_env(redis_url)
    processes = [start(module, [{}] * 8, env) for _ in range(3)]
    starts = sorted(e["results"]["tick"] for p in processes for e in envelopes(p))
    assert len(starts) == 24
    # Each process reads its clock just after Redis granted the start: allow that lag.
    lag = 0.1
    for i, first in enumerate(starts):
        for last in starts[i:]:
            window = last - first
            inside = sum(1 for t in starts[i:] if t <= last)
            assert inside <= BURST + RPS * (window + lag), (window, inside)


async def test_a_breaker_opened_in_one_process_is_open_in_the_others(
    tmp_path, redis_url, redis_client, unique_name
):
    module = build(tmp_path, unique_name, """
        AsyncPatterns.circuit_breaker(builder, "call", '''
            if fail:
                raise ConnectionError("service down")
            result = {"ran": True}
        ''', failure_threshold=2, reset_timeout=300, shared="cache")
    """)
    env = redis_env(redis_url)
    failing = envelopes(start(module, [{"fail": True}] * 2, env))
    assert [e["results"]["call"]["error_type"] for e in failing] == ["ConnectionError"] * 2
    others = [start(module, [{"fail": False}], env) for _ in range(2)]
    for process in others:
        (envelope,) = envelopes(process)
        output = envelope["results"]["call"]
        assert output["success"] is False and output["circuit_state"] == "open"
        assert output["error_type"] == "CircuitOpenError"  # the code did not run
    # The breaker lives under a key fixed by workflow and node, the same in every process.
    keys = await redis_client.keys(f"kflow:{unique_name}:*")
    assert keys == [f"kflow:{unique_name}:call:breaker"]
    await redis_client.delete(*keys)
