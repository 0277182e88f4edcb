"""What a run does, seen through the envelope: scheduling, skips, inputs, wiring,
timeouts, error handlers, and errors pointing at the user's own lines."""

from __future__ import annotations

import asyncio
import inspect
import logging

import pytest

from kflow import AsyncLocalRuntime, AsyncWorkflowBuilder, ErrorHandler, compile_workflow


async def run(builder: AsyncWorkflowBuilder, inputs: dict | None = None) -> dict:
    return await AsyncLocalRuntime().execute_workflow_async(builder.build(), inputs or {})


async def test_guide_unit_testing_example_as_written():
    # Create workflow
    builder = AsyncWorkflowBuilder("test_workflow")
    builder.add_async_code(
        "test_node",
        "result = {'processed': True, 'value': input_value * 2}"
    )

    workflow = builder.build()

    # Execute with test data
    runtime = AsyncLocalRuntime()
    result = await runtime.execute_workflow_async(
        workflow,
        {"input_value": 21}
    )

    # Verify results
    assert result["status"] == "success"
    assert result["results"]["test_node"]["processed"] is True
    assert result["results"]["test_node"]["value"] == 42


async def test_envelope_shape():
    builder = AsyncWorkflowBuilder("shape")
    builder.add_async_code("a", "result = 1")
    envelope = await run(builder)
    assert set(envelope) == {
        "status", "results", "errors", "skipped", "recovered", "attempts",
        "execution_times", "total_duration", "workflow", "run_id",
    }
    assert envelope["workflow"] == "shape" and len(envelope["run_id"]) == 32
    assert envelope["execution_times"]["a"] >= 0


def test_a_chain_is_straight_line_awaits():
    builder = AsyncWorkflowBuilder("chain")
    builder.add_async_code("a", "result = 1")
    builder.add_async_code("b", "result = x + 1")
    builder.add_async_code("c", "result = x + 1")
    builder.add_connection("a", None, "b", "x")
    builder.add_connection("b", None, "c", "x")
    source = compile_workflow(builder.build()).source
    assert "gather" not in source and "async def chain_" not in source
    assert "import asyncio" not in source


async def test_independent_branches_run_concurrently():
    # Each branch waits for the other to start: run one after the other, this deadlocks
    # (and the per-node timeout fails both); run concurrently, both succeed.
    builder = AsyncWorkflowBuilder("concurrent")
    builder.add_async_code("left", "events['left'].set()\nawait events['right'].wait()\nresult = 'l'", timeout=5)
    builder.add_async_code("right", "events['right'].set()\nawait events['left'].wait()\nresult = 'r'", timeout=5)
    builder.add_async_code("join", "result = a + b")
    builder.add_connection("left", None, "join", "a")
    builder.add_connection("right", None, "join", "b")
    events = {"left": asyncio.Event(), "right": asyncio.Event()}
    envelope = await run(builder, {"events": events})
    assert envelope["status"] == "success", envelope["errors"]
    assert envelope["results"]["join"] == "lr"


async def test_failed_node_skips_dependents_but_not_independent_branches():
    builder = AsyncWorkflowBuilder("skips")
    builder.add_async_code("boom", "result = 1 / 0")
    builder.add_async_code("after_boom", "result = x")
    builder.add_async_code("after_after", "result = x")
    builder.add_async_code("other", "result = 'fine'")
    builder.add_async_code("other_next", "result = x + '!'")
    builder.add_connection("boom", None, "after_boom", "x")
    builder.add_connection("after_boom", None, "after_after", "x")
    builder.add_connection("other", None, "other_next", "x")
    envelope = await run(builder)
    assert envelope["status"] == "failed"
    assert set(envelope["errors"]) == {"boom"}
    assert "ZeroDivisionError: division by zero" in envelope["errors"]["boom"]
    assert envelope["skipped"] == ["after_boom", "after_after"]
    assert envelope["results"] == {"other": "fine", "other_next": "fine!"}


async def test_a_failed_fan_out_source_skips_every_branch_and_the_sink():
    # The source and the sink run inline between the stages (kflow.graph.stages): a failure
    # there must skip what reads it exactly as a chain's wait used to.
    builder = AsyncWorkflowBuilder("fan")
    builder.add_async_code("source", "result = 1 / 0")
    for name in ("a", "b"):
        builder.add_async_code(name, "result = x")
        builder.add_connection("source", None, name, "x")
    builder.add_async_code("sink", "result = a + b")
    builder.add_connection("a", None, "sink", "a")
    builder.add_connection("b", None, "sink", "b")
    envelope = await run(builder)
    assert envelope["status"] == "failed" and set(envelope["errors"]) == {"source"}
    assert envelope["skipped"] == ["a", "b", "sink"] and envelope["results"] == {}


async def test_runtime_error_names_the_users_line():
    builder = AsyncWorkflowBuilder("lines")
    builder.add_async_code("calc", """
        a = 1
        b = 0
        c = a / b
        result = c
    """)
    line = test_runtime_error_names_the_users_line.__code__.co_firstlineno + 5
    envelope = await run(builder)
    assert envelope["errors"]["calc"] == (
        f"test_runtime.py:{line}: ZeroDivisionError: division by zero"
    )


async def test_error_inside_a_helper_defined_in_node_code_names_its_line():
    builder = AsyncWorkflowBuilder("lines")
    builder.add_async_code("calc", """
        def helper(v):
            return v["missing"]
        result = helper({})
    """)
    line = test_error_inside_a_helper_defined_in_node_code_names_its_line.__code__.co_firstlineno + 4
    envelope = await run(builder)
    assert envelope["errors"]["calc"] == f"test_runtime.py:{line}: KeyError: 'missing'"


async def test_missing_required_inputs_fail_before_any_node_starts():
    builder = AsyncWorkflowBuilder("inputs")
    builder.add_async_code("first", "calls.append('first')\nresult = 1")
    builder.add_async_code("needs", "result = token + x")
    builder.add_async_code("also", "result = token * 2 + count")
    builder.add_connection("first", None, "needs", "x")
    calls: list[str] = []
    envelope = await run(builder, {"calls": calls})
    assert calls == []
    assert envelope["status"] == "failed"
    assert envelope["errors"] == {
        "needs": "InputError: missing required input 'token'",
        "also": "InputError: missing required input 'token', 'count'",
    }
    assert envelope["skipped"] == ["first"]


async def test_node_specific_inputs_win_over_workflow_inputs():
    builder = AsyncWorkflowBuilder("specific")
    builder.add_async_code("a", "result = value")
    builder.add_async_code("b", "result = value")
    envelope = await run(builder, {"value": 1, "b": {"value": 2}})
    assert envelope["results"] == {"a": 1, "b": 2}


async def test_missing_connection_path_fails_the_receiving_node():
    builder = AsyncWorkflowBuilder("paths")
    # Built by a call, so its keys are not known until it runs (a dict literal would
    # make this a compile error, KF104).
    builder.add_async_code("src", "result = dict(user={'name': 'A'}, n=1)")
    builder.add_async_code("dst", "result = email")
    builder.add_connection("src", "result.user.email", "dst", "email")
    envelope = await run(builder)
    assert envelope["results"] == {"src": {"user": {"name": "A"}, "n": 1}}
    assert envelope["errors"] == {
        "dst": "WiringError: input 'email': 'src' output has no 'user.email' (keys there: ['name'])"
    }


async def test_timeout_per_node():
    builder = AsyncWorkflowBuilder("slow")
    builder.add_async_code("slow", "await asyncio.sleep(10)\nresult = 1", timeout=0.05)
    sleeping = inspect.currentframe().f_lineno - 1  # the line the node was waiting on
    envelope = await run(builder)
    assert envelope["errors"]["slow"] == (
        f"test_runtime.py:{sleeping}: TimeoutError: node 'slow' timed out after 0.05s")


async def test_error_handlers():
    builder = AsyncWorkflowBuilder("handlers")
    builder.add_async_code("fb", "result = 1 / 0", error_handler=ErrorHandler(
        "fallback", fallback_value={"ok": False, "items": []}))
    builder.add_async_code("ign", "raise ValueError('nope')", error_handler=ErrorHandler("ignore"))
    builder.add_async_code("custom", "raise KeyError('k')", error_handler=ErrorHandler(
        "custom", code="result = {'handled': type(error).__name__, 'seed': seed}"))
    builder.add_async_code("after_fb", "result = len(v['items'])")
    builder.add_connection("fb", None, "after_fb", "v")
    envelope = await run(builder, {"seed": 7})
    assert envelope["status"] == "success"
    assert envelope["results"] == {
        "fb": {"ok": False, "items": []},
        "ign": None,
        "custom": {"handled": "KeyError", "seed": 7},
        "after_fb": 0,
    }
    assert set(envelope["recovered"]) == {"fb", "ign", "custom"}
    assert "ZeroDivisionError" in envelope["recovered"]["fb"]


async def test_fallback_value_is_fresh_each_run():
    builder = AsyncWorkflowBuilder("fresh")
    builder.add_async_code("fb", "raise RuntimeError()", error_handler=ErrorHandler(
        "fallback", fallback_value={"items": []}))
    builder.add_async_code("mutate", "v['items'].append(1)\nresult = v")
    builder.add_connection("fb", None, "mutate", "v")
    workflow = builder.build()
    runtime = AsyncLocalRuntime()
    first = await runtime.execute_workflow_async(workflow, {})
    second = await runtime.execute_workflow_async(workflow, {})
    assert first["results"]["mutate"] == second["results"]["mutate"] == {"items": [1]}


async def test_log_handler_logs_and_fails(caplog):
    builder = AsyncWorkflowBuilder("logged")
    builder.add_async_code("bad", "raise ValueError('broken')", error_handler=ErrorHandler("log"))
    with caplog.at_level(logging.ERROR, logger="kflow"):
        envelope = await run(builder)
    assert envelope["status"] == "failed"
    assert "ValueError: broken" in envelope["errors"]["bad"]
    assert any("broken" in r.getMessage() and "'bad'" in r.getMessage() for r in caplog.records)


async def test_top_level_return_and_no_result():
    builder = AsyncWorkflowBuilder("outputs")
    builder.add_async_code("ret", "if True:\n    return 5\nresult = 6")
    builder.add_async_code("none", "x = 1")
    compiled = compile_workflow(builder.build())
    assert [w.code for w in compiled.warnings] == ["KF102"]
    assert "node 'none' never sets `result`" in compiled.warnings[0].message
    envelope = await run(builder)
    assert envelope["results"] == {"ret": 5, "none": None}


async def test_mutable_default_of_optional_input_is_not_shared():
    builder = AsyncWorkflowBuilder("defaults")
    builder.add_async_code("a", "seen = globals().get('seen', [])\nseen.append(1)\nresult = len(seen)")
    workflow = builder.build()
    runtime = AsyncLocalRuntime()
    assert (await runtime.execute_workflow_async(workflow, {}))["results"]["a"] == 1
    assert (await runtime.execute_workflow_async(workflow, {}))["results"]["a"] == 1
    assert (await runtime.execute_workflow_async(workflow, {"seen": [0]}))["results"]["a"] == 2


async def test_cancellation_propagates_and_stops_running_nodes():
    builder = AsyncWorkflowBuilder("cancel")
    builder.add_async_code("wait", "started.set()\nawait asyncio.sleep(60)\nresult = 1", timeout=None)
    started = asyncio.Event()
    task = asyncio.ensure_future(run(builder, {"started": started}))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_code_ending_without_result_names_the_node_and_the_line():
    # The guide's "bad" error handling: `except: pass` leaves `result` unset (issue 14.4).
    builder = AsyncWorkflowBuilder("unset")
    builder.add_async_code("fetch", """
        try:
            result = await boom()
        except Exception:
            pass
    """)
    builder.add_async_code("reads_early", """
        result.append(1)
        result = []
    """)

    async def boom():
        raise ValueError("down")

    line = test_code_ending_without_result_names_the_node_and_the_line.__code__.co_firstlineno + 7
    envelope = await run(builder, {"boom": boom})
    assert envelope["errors"]["fetch"] == (
        f"test_runtime.py:{line}: ResultNotSet: node 'fetch' ended without setting `result` "
        "(its code ended here without assigning it)"
    )
    # Reading `result` before it is set stays Python's own error, at its line.
    assert envelope["errors"]["reads_early"].startswith(
        f"test_runtime.py:{line + 3}: UnboundLocalError: cannot access local variable 'result'"
    )


async def test_code_with_several_ends_without_result_lists_them():
    builder = AsyncWorkflowBuilder("unset")
    builder.add_async_code("pick", """
        if kind == "a":
            result = 1
        elif kind == "b":
            pass
    """)
    # Ends: the `elif` (no `else`) and the `pass`.
    first = test_code_with_several_ends_without_result_lists_them.__code__.co_firstlineno + 5
    envelope = await run(builder, {"kind": "c"})
    assert envelope["errors"]["pick"] == (
        f"test_runtime.py:{first}: ResultNotSet: node 'pick' ended without setting `result` "
        f"(its code can end without it at lines {first}, {first + 1})"
    )
    assert (await run(builder, {"kind": "a"}))["results"] == {"pick": 1}


async def test_a_misspelt_input_names_the_key_and_the_closest_required_input():
    # Issue 14.12: {"page_nmu": 1} when page_num is required.
    builder = AsyncWorkflowBuilder("pages")
    builder.add_async_code("page", "result = page_num * per_page")
    envelope = await run(builder, {"page_nmu": 1, "per_page": 20, "unrelated": True})
    assert envelope["errors"]["page"] == (
        "InputError: missing required input 'page_num' (the inputs have 'page_nmu': did you "
        "mean 'page_num'?)"
    )
    envelope = await run(builder, {"per_page": 20, "unrelated": True})
    assert envelope["errors"]["page"] == "InputError: missing required input 'page_num'"


async def test_a_multi_line_statement_fails_at_the_failing_expressions_line():
    # Issue 14.5: Python 3.11 positions, not the statement's first line.
    builder = AsyncWorkflowBuilder("lines")
    builder.add_async_code("calc", """
        total = {
            "a": 1,
            "b": 1 / zero,
        }
        result = send(
            total,
            missing["key"],
        )
    """)
    first = test_a_multi_line_statement_fails_at_the_failing_expressions_line.__code__.co_firstlineno
    envelope = await run(builder, {"zero": 0, "send": print, "missing": {}})
    assert envelope["errors"]["calc"] == (
        f"test_runtime.py:{first + 6}: ZeroDivisionError: division by zero"
    )
    envelope = await run(builder, {"zero": 1, "send": lambda *a: a, "missing": {}})
    assert envelope["errors"]["calc"] == f"test_runtime.py:{first + 10}: KeyError: 'key'"


async def test_map_item_errors_and_fetch_failures_carry_the_users_line():
    from kflow import AsyncPatterns

    builder = AsyncWorkflowBuilder("lines")
    builder.add_parallel_map("m", """
        async def process_item(item):
            if item == 2:
                raise ValueError("bad")
            return item
    """, continue_on_error=True)
    builder.add_parallel_map("s", """
        def process_item(item):
            return 10 // item
    """, continue_on_error=True)
    AsyncPatterns.parallel_fetch(builder, "f", {
        "one": "result = 1",
        "two": """
            x = 1
            result = x / 0
        """,
    })
    first = test_map_item_errors_and_fetch_failures_carry_the_users_line.__code__.co_firstlineno
    envelope = await run(builder, {"items": [1, 2, 0]})
    results = envelope["results"]
    assert results["m"]["errors"] == [{"index": 1, "item": 2, "error": "bad",
                                       "error_type": "ValueError",
                                       "where": f"test_runtime.py:{first + 7}"}]
    # A sync process_item runs in threads: its line is found all the same.
    assert results["s"]["errors"][0]["where"] == f"test_runtime.py:{first + 12}"
    assert results["f"]["failed"] == {
        "two": f"test_runtime.py:{first + 18}: ZeroDivisionError: division by zero"
    }


async def test_a_misspelt_optional_input_is_warned_about_once(caplog):
    builder = AsyncWorkflowBuilder("pages")
    builder.add_async_code("page", "result = globals().get('page_size', 10) * page")
    with caplog.at_level(logging.WARNING, logger="kflow"):
        for _ in range(2):
            envelope = await run(builder, {"page": 2, "page_sise": 50, "other_thing": 1})
            assert envelope["results"] == {"page": 20}
    assert [r.getMessage() for r in caplog.records] == [
        "workflow 'pages': input 'page_sise' was given but no node reads it: did you mean "
        "'page_size'?"]
