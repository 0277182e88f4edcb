"""`kflowc check`: each diagnostic from a broken workflow, with code, place and message."""

from __future__ import annotations

import json

import pytest

WORKFLOW_HEAD = (
    "from kailash.workflow import AsyncWorkflowBuilder, AsyncRetryPolicy\n"
    'builder = AsyncWorkflowBuilder("w")\n'
)


def diagnostics(kflowc, write_workflow, body: str, *flags: str) -> tuple[int, list[dict]]:
    path = write_workflow(WORKFLOW_HEAD + body)
    code, stdout, _ = kflowc("check", "--format", "json", *flags, path)
    report = json.loads(stdout)
    for d in report["diagnostics"]:
        d["file"] = d["file"].rsplit("/", 1)[-1] if d["file"] else None
    return code, report["diagnostics"]


def only(found: list[dict], code: str) -> dict:
    (match,) = [d for d in found if d["code"] == code]
    return match


def test_name_that_becomes_a_workflow_input(kflowc, write_workflow):
    body = 'builder.add_async_code("a", "result = totl + 1")\n'
    code, found = diagnostics(kflowc, write_workflow, body)
    d = only(found, "KF101")
    assert (d["severity"], d["line"], d["column"]) == ("warning", 3, 39)
    assert "reads `totl`" in d["message"] and "required workflow input" in d["message"]
    assert code == 0
    code, found = diagnostics(kflowc, write_workflow, body, "--strict")
    assert only(found, "KF101")["severity"] == "error" and code == 2


def test_connection_path_not_in_a_dict_literal_output(kflowc, write_workflow):
    body = (
        'builder.add_async_code("src", "result = {\'user_data\': {\'name\': 1}, \'n\': 2}")\n'
        'builder.add_async_code("dst", "result = v")\n'
        'builder.add_connection("src", "result.user_dta", "dst", "v")\n'
    )
    code, found = diagnostics(kflowc, write_workflow, body)
    d = only(found, "KF104")
    assert d["severity"] == "error" and d["line"] == 5 and code == 2
    assert d["message"] == (
        "connection 'src' -> 'dst': result has no key 'user_dta' (it has 'user_data', 'n')"
    )
    assert d["hint"] == "did you mean 'user_data'?"


def test_nested_path_and_pattern_outputs(kflowc, write_workflow, tmp_path):
    body = (
        'builder.add_async_code("src", "result = {\'user\': {\'name\': 1}}")\n'
        'builder.add_async_code("dst", "result = v")\n'
        'builder.add_connection("src", "result.user.nmae", "dst", "v")\n'
        'builder.add_parallel_map("m", "async def process_item(i):\\n    return i")\n'
        'builder.add_async_code("after", "result = r")\n'
        'builder.add_connection("m", "result", "after", "r")\n'
        'builder.add_connection("m", "reslts", "after", "r")\n'
    )
    _, found = diagnostics(kflowc, write_workflow, body)
    messages = [d["message"] for d in found if d["code"] == "KF104"]
    assert messages == [
        "connection 'src' -> 'dst': result.user has no key 'nmae' (it has 'name')",
        "connection 'm' -> 'after': result has no key 'reslts' (it has 'results', 'errors', "
        "'statistics')",
    ]


def test_dynamic_outputs_are_not_guessed(kflowc, write_workflow):
    body = (
        'builder.add_async_code("src", "result = {\'a\': 1}\\nresult[\'b\'] = 2")\n'
        'builder.add_async_code("dst", "result = v")\n'
        'builder.add_connection("src", "result.b", "dst", "v")\n'
    )
    _, found = diagnostics(kflowc, write_workflow, body)
    assert not [d for d in found if d["code"] == "KF104"]


def test_connection_into_an_input_never_read_and_unused_output(kflowc, write_workflow):
    body = (
        'builder.add_async_code("a", "result = 1")\n'
        'builder.add_async_code("b", "result = 2")\n'
        'builder.add_connection("a", "result", "b", "value")\n'
    )
    _, found = diagnostics(kflowc, write_workflow, body)
    d = only(found, "KF105")
    assert d["line"] == 5 and d["message"] == (
        "connection 'a' -> 'b': the target never reads `value`"
    )
    note = only(found, "KF106")
    assert note["severity"] == "info" and note["line"] == 3


def test_node_without_result(kflowc, write_workflow):
    _, found = diagnostics(kflowc, write_workflow, 'builder.add_async_code("a", "x = 1")\n')
    d = only(found, "KF102")
    assert d["line"] == 3 and d["message"] == "node 'a' never sets `result`; its output will be None"


def test_await_inside_sync_process_item(kflowc, write_workflow):
    body = (
        'builder.add_parallel_map("m", """\n'
        "def process_item(item):\n"
        "    return await fetch(item)\n"
        '""")\n'
    )
    code, found = diagnostics(kflowc, write_workflow, body)
    d = only(found, "KF107")
    assert (d["severity"], d["line"], d["column"]) == ("error", 5, 12) and code == 2
    assert "'await' outside" in d["message"] and d["hint"] == "make that function `async def`"


@pytest.mark.parametrize("call, label", [("time.sleep(1)", "time.sleep()"),
                                         ("requests.get(url)", "requests")])
def test_blocking_call_in_async_code(kflowc, write_workflow, call, label):
    body = (
        'builder.add_async_code("a", """\n'
        "import time, requests\n"
        f"{call}\n"
        "def helper():\n"
        f"    {call}\n"
        "result = 1\n"
        '""")\n'
    )
    _, found = diagnostics(kflowc, write_workflow, body)
    d = only(found, "KF108")  # the one in the plain def may run in a thread: not reported
    assert (d["line"], d["column"]) == (5, 1)
    assert d["message"] == f"node 'a': {label} blocks the event loop in async code"


def test_build_errors_in_the_same_format(kflowc, write_workflow):
    body = (
        'builder.add_async_code("a", "result = 1", retry_policy=AsyncRetryPolicy('
        'retry_exceptions=["nope.Error"]))\n'
        'builder.add_async_code("b", "result = (", required_resources=["db"])\n'
    )
    code, found = diagnostics(kflowc, write_workflow, body)
    assert code == 2
    assert [d["code"] for d in found] == ["KF006"]  # graph errors stop before code analysis
    code, found = diagnostics(kflowc, write_workflow, body.replace(', required_resources=["db"]', ""))
    assert sorted(d["code"] for d in found) == ["KF001", "KF005"]


def test_clean_workflow_text_output(kflowc, write_workflow):
    path = write_workflow(WORKFLOW_HEAD + 'builder.add_async_code("a", "result = 1")\n')
    code, stdout, _ = kflowc("check", "--strict", path)
    assert code == 0 and stdout.strip() == "0 error(s), 0 warning(s), 0 note(s)"


# -- defect 7: what only a custom error handler reads ---------------------------------------

HANDLER_BODY = (
    "from kailash.workflow import ErrorHandler\n"
    'builder.add_async_code("a", "result = 1 / zero", error_handler=ErrorHandler(\n'
    '    "custom", code="result = {\'note\': note, \'retries\': globals().get(\'retries\', 2)}"))\n'
)


async def test_an_optional_input_read_only_by_a_handler_reaches_it(write_workflow):
    from kflow import AsyncLocalRuntime
    from kflow.loader import load_workflow

    workflow = load_workflow(write_workflow(WORKFLOW_HEAD + HANDLER_BODY))
    runtime = AsyncLocalRuntime()
    envelope = await runtime.execute_workflow_async(workflow, {"zero": 0, "note": "n"})
    assert envelope["status"] == "success", envelope["errors"]
    assert envelope["results"]["a"] == {"note": "n", "retries": 2}
    envelope = await runtime.execute_workflow_async(workflow, {"zero": 0, "note": "n",
                                                               "retries": 5})
    assert envelope["results"]["a"] == {"note": "n", "retries": 5}


def test_inputs_only_a_handler_reads_are_listed_by_build_and_check(kflowc, write_workflow,
                                                                    tmp_path):
    path = write_workflow(WORKFLOW_HEAD + HANDLER_BODY)
    code, _, stderr = kflowc("build", path, "-o", str(tmp_path / "out.py"))
    assert code == 0, stderr
    assert "workflow inputs: note, zero" in stderr
    _, found = diagnostics(kflowc, write_workflow, HANDLER_BODY)
    reads = sorted(d["message"].split("`")[1] for d in found if d["code"] == "KF101")
    assert reads == ["note", "zero"]


# -- defect 10: one error does not hide the others -------------------------------------------


def test_a_build_error_does_not_hide_the_warnings_of_the_same_node(kflowc, write_workflow):
    body = (
        'builder.add_async_code("src", "result = {\'user\': 1}")\n'
        'builder.add_async_code("dst", "result = helper(v)")\n'
        'builder.add_connection("src", "result.usr", "dst", "v")\n'
    )
    code, found = diagnostics(kflowc, write_workflow, body)
    assert code == 2
    assert sorted(d["code"] for d in found) == ["KF101", "KF104"]
    assert only(found, "KF101")["message"].startswith("node 'dst' reads `helper`")


def test_errors_in_several_nodes_are_all_reported(kflowc, write_workflow):
    body = (
        'builder.add_async_code("a", "result = (")\n'
        'builder.add_async_code("b", "yield 1")\n'
        'builder.add_async_code("c", "result = undefined_name")\n'
    )
    code, found = diagnostics(kflowc, write_workflow, body)
    assert code == 2
    assert [(d["code"], d["line"]) for d in found] == [("KF001", 3), ("KF001", 4), ("KF101", 5)]


def test_timeout_on_code_that_never_awaits_is_noted(kflowc, write_workflow):
    body = (
        'builder.add_async_code("pure", "result = sum(range(10))", timeout=5)\n'
        'builder.add_async_code("waits", "await asyncio.sleep(0)\\nresult = 1", timeout=5)\n'
        'builder.add_async_code("nested", "async def f():\\n    await g()\\nresult = f", '
        "timeout=5)\n"
        'builder.add_async_code("locked", "async with lock:\\n    result = 1", timeout=5)\n'
    )
    code, found = diagnostics(kflowc, write_workflow, body)
    notes = [d for d in found if d["code"] == "KF113"]
    assert [(d["severity"], d["line"]) for d in notes] == [("info", 3), ("info", 5)]
    assert notes[0]["message"] == (
        "node 'pure': timeout=5 is not applied, since its code never awaits and so cannot "
        "be interrupted")
    assert code == 0


def test_code_that_never_awaits_gets_no_timeout_machinery():
    from kflow import AsyncWorkflowBuilder, compile_workflow

    builder = AsyncWorkflowBuilder("w")
    builder.add_async_code("pure", "result = 1", timeout=5)
    builder.add_async_code("waits", "await asyncio.sleep(0)\nresult = x", timeout=5)
    builder.add_connection("pure", "result", "waits", "x")
    source = compile_workflow(builder.build()).source
    assert 'await ctx.call("pure", node_pure, timeout=None)' in source
    assert "timeout=5" in source.split('"waits"', 1)[1]


def test_code_that_can_end_without_result(kflowc, write_workflow):
    body = (
        'builder.add_async_code("fetch", """\n'
        'try:\n'
        '    result = await api()\n'
        'except Exception:\n'
        '    pass\n'
        '""")\n'
        'builder.add_async_code("loop", """\n'
        'while True:\n'
        '    result = 1\n'
        '    if result:\n'
        '        break\n'
        'if result:\n'
        '    result = 2\n'
        '""")\n'
        'CODE = "result = 1"\n'
        'builder.add_async_code("from_a_variable", CODE)\n'
    )
    code, found = diagnostics(kflowc, write_workflow, body)
    d = only(found, "KF110")  # one: not the loop, not the code given as a variable
    assert (d["severity"], d["line"]) == ("warning", 7)
    assert d["message"] == (
        "node 'fetch' can end here without setting `result`; the node then fails"
    )
    assert "assign `result` on every path" in d["hint"]
    assert code == 0


def test_kf101_hints_say_what_the_name_probably_is(kflowc, write_workflow):
    # Issue 14.13: a client-like name, an awaited undefined function, workflow.py's globals.
    body = (
        'API_KEY = "k"\n'
        "def helper(v):\n"
        "    return v\n"
        'builder.add_async_code("a", """\n'
        'users = await crm_api.get("/users")\n'
        "data = await some_operation()\n"
        "result = (users, data, helper(API_KEY), totl)\n"
        '""")\n'
    )
    _, found = diagnostics(kflowc, write_workflow, body)
    hints = {d["message"].split("`")[1]: d["hint"] for d in found if d["code"] == "KF101"}
    assert hints["crm_api"].startswith(
        "`crm_api.get(...)` reads like a client: declare it, e.g. "
        "builder.with_http_client('crm_api', base_url=...) for an HTTP API")
    assert "require_resource('crm_api', factory)" in hints["crm_api"]
    assert hints["some_operation"].startswith(
        "`await some_operation(...)` calls a function nothing defines")
    assert hints["helper"] == (
        "`helper` is a function defined in workflow.py, but node code cannot see "
        "workflow.py's globals (it is compiled into a module of its own): define it in the "
        "code string (or pass it as an input, run({'helper': ...})); a function that makes a "
        "client can be a resource: require_resource('helper', helper)")
    assert hints["API_KEY"].startswith("`API_KEY` is a value assigned in workflow.py, but")
    assert hints["totl"].startswith("pass it with run({'totl': ...})")
