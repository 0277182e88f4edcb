"""The one retry type in a workflow: the guide's AsyncRetryPolicy and Kailash's
RetryPolicy spellings, delays as the guide's reader computes them, jitter on request."""

from __future__ import annotations

import pytest

from kflow import (
    AsyncLocalRuntime,
    AsyncPatterns,
    AsyncRetryPolicy,
    AsyncWorkflowBuilder,
    RetryPolicy,
    compile_workflow,
)
from kflow_runtime.patterns.retry import RetryPolicy as RuntimeRetryPolicy

FLAKY = """
calls.append(1)
if len(calls) < 3:
    raise ConnectionError("not yet")
result = len(calls)
"""


def test_there_is_one_retry_type():
    assert AsyncRetryPolicy is RetryPolicy is RuntimeRetryPolicy
    b = AsyncWorkflowBuilder("w")
    b.add_async_code("a", "result = 1", retry_policy=AsyncRetryPolicy(
        retry_exceptions=[ConnectionError]))
    assert isinstance(b.build().node("a").options.retry, RuntimeRetryPolicy)


async def test_kailashs_spelling_maps_onto_the_same_policy():
    b = AsyncWorkflowBuilder("w")
    b.add_async_code("a", FLAKY, retry_policy=RetryPolicy(
        max_retries=2, base_delay=0.0, retry_on=[ConnectionError]))
    workflow = b.build()
    assert workflow.node("a").options.retry == AsyncRetryPolicy(
        max_attempts=3, initial_delay=0.0, retry_exceptions=("ConnectionError",))
    envelope = await AsyncLocalRuntime().execute_workflow_async(workflow, {"calls": []})
    assert envelope["results"]["a"] == 3 and envelope["attempts"] == {"a": 3}


def test_kailashs_spelling_in_a_workflow_file(kflowc, write_workflow, tmp_path):
    path = write_workflow(
        "from kailash.workflow import AsyncWorkflowBuilder, RetryPolicy\n"
        'builder = AsyncWorkflowBuilder("w")\n'
        'builder.add_async_code("a", "result = 1", '
        "retry_policy=RetryPolicy(max_retries=4, base_delay=0.5))\n"
    )
    out = tmp_path / "out.py"
    code, _, stderr = kflowc("build", path, "-o", str(out))
    assert code == 0, stderr
    assert "max_attempts=5,\n" in out.read_text() and "initial_delay=0.5," in out.read_text()


def test_the_guides_delays_are_what_its_reader_computes():
    """`initial_delay=1.0, backoff_factor=2.0` waits 1 s, then 2 s: no jitter unless asked,
    and the generated call says which."""
    b = AsyncWorkflowBuilder("w")
    policy = AsyncRetryPolicy(max_attempts=3, initial_delay=1.0, backoff_factor=2.0)
    b.add_async_code("a", "result = 1", retry_policy=policy)
    b.add_async_code("b", "result = 1", retry_policy=AsyncRetryPolicy(jitter=True))
    source = compile_workflow(b.build()).source
    first, second = (call.split("\n        ),")[0] for call in source.split("rt.RetryPolicy(")[1:])
    assert "jitter" not in first
    assert "jitter=True" in second
    assert [policy.delay(n) for n in (1, 2)] == [1.0, 2.0]


def test_retry_with_backoff_has_jitter_unless_told_otherwise():
    b = AsyncWorkflowBuilder("w")
    AsyncPatterns.retry_with_backoff(b, "a", "result = 1", max_retries=3,
                                     initial_backoff=1.0)
    AsyncPatterns.retry_with_backoff(b, "b", "result = 1", jitter=False)
    workflow = b.build()
    assert workflow.node("a").options.retry.jitter is True
    assert workflow.node("b").options.retry.jitter is False
    source = compile_workflow(workflow).source
    assert source.count("jitter=True") == 1


@pytest.mark.parametrize("keyword", ["max_attempt", "retry_exception", "initial_dely"])
def test_a_misspelt_policy_keyword_names_the_right_one(keyword):
    with pytest.raises(TypeError, match="did you mean"):
        AsyncRetryPolicy(**{keyword: 1})
