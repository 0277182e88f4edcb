"""Bad workflows: one clear message each, at the user's file:line:col, exit 2,
no traceback from inside kflow, and no half-written output file."""

from __future__ import annotations

import os
import re

import pytest


def build(kflowc, path: str, tmp_path) -> tuple[int, str, str]:
    out = tmp_path / "out.py"
    code, stdout, stderr = kflowc("build", path, "-o", str(out))
    assert code == 2, stderr
    assert not out.exists(), "a failed build must not leave an output file"
    assert "Traceback" not in stderr
    return code, stdout, stderr


def test_syntax_error_in_code_string_points_into_the_string(kflowc, write_workflow, tmp_path):
    path = write_workflow(
        '''
        from kailash.workflow import AsyncWorkflowBuilder
        builder = AsyncWorkflowBuilder("bad")
        builder.add_async_code("a", """
            x = 1
            y = (x +
            result = 2
        """)
        '''
    )
    _, _, stderr = build(kflowc, path, tmp_path)
    assert stderr.splitlines()[0] == (
        "workflow.py:5:9: error KF001: node 'a': syntax error in code: '(' was never closed"
    ) or stderr.startswith(f"{path}:5:9: error KF001")
    assert "    y = (x +\n        ^" in stderr
    assert "hint:" in stderr


def test_one_line_code_string_column(kflowc, write_workflow, tmp_path):
    path = write_workflow(
        """
        from kailash.workflow import AsyncWorkflowBuilder
        builder = AsyncWorkflowBuilder("bad")
        builder.add_async_code("a", "result = = 1")
        """
    )
    _, _, stderr = build(kflowc, path, tmp_path)
    assert f"{path}:3:39: error KF001" in stderr
    line, caret = stderr.splitlines()[1:3]
    assert caret.index("^") - 4 == line[4:].index("= 1")


@pytest.mark.parametrize(
    "tail, code, message, line",
    [
        ('builder.add_connection("a", "result", "nope", "x")',
         "KF003", "connection target 'nope' is not a node", 5),
        ('builder.add_connection("b", None, "a", "y")\nbuilder.add_connection("a", None, "b", "x")',
         "KF002", "connections form a cycle", 6),
        ('builder.add_async_code("a", "result = 3")',
         "KF004", "duplicate node id 'a'", 5),
        ('builder.add_async_code("c", "result = 1", required_resources=["dbb"])',
         "KF006", "requires unknown resource 'dbb'", 5),
        ('from kailash.workflow import AsyncRetryPolicy\n'
         'builder.add_async_code("c", "result = 1", retry_policy=AsyncRetryPolicy('
         'retry_exceptions=["aiohttp.NoSuchError"]))',
         "KF005", "retry exception 'aiohttp.NoSuchError' cannot be resolved", 6),
        ('from kailash.workflow import AsyncRetryPolicy\n'
         'builder.add_async_code("c", "result = 1", retry_policy=AsyncRetryPolicy('
         'retry_exceptions=["NotAnError"]))',
         "KF005", "retry exception 'NotAnError' is not a builtin exception", 6),
    ],
)
def test_graph_errors(kflowc, write_workflow, tmp_path, tail, code, message, line):
    path = write_workflow(
        "from kailash.workflow import AsyncWorkflowBuilder\n"
        'builder = AsyncWorkflowBuilder("bad")\n'
        'builder.add_async_code("a", "result = 1")\n'
        'builder.add_async_code("b", "result = x")\n' + tail + "\n"
    )
    _, _, stderr = build(kflowc, path, tmp_path)
    first = stderr.splitlines()[0]
    assert first.startswith(f"{path}:{line}:1: error {code}: "), stderr
    assert message in first
    assert "hint:" in stderr


def test_unknown_node_suggests_the_close_one(kflowc, write_workflow, tmp_path):
    path = write_workflow(
        """
        from kailash.workflow import AsyncWorkflowBuilder
        builder = AsyncWorkflowBuilder("bad")
        builder.add_async_code("fetch", "result = 1")
        builder.add_async_code("process", "result = x")
        builder.add_connection("fecth", None, "process", "x")
        """
    )
    _, _, stderr = build(kflowc, path, tmp_path)
    assert "did you mean 'fetch'?" in stderr


def test_workflow_file_that_raises_names_its_line(kflowc, write_workflow, tmp_path):
    path = write_workflow(
        """
        from kailash.workflow import AsyncWorkflowBuilder
        builder = AsyncWorkflowBuilder("bad")
        1 / 0
        """
    )
    _, _, stderr = build(kflowc, path, tmp_path)
    assert stderr.startswith(f"{path}:3:1: error KF022: {path} raised ZeroDivisionError")


def test_file_without_workflow(kflowc, write_workflow, tmp_path):
    path = write_workflow("x = 1\n")
    _, _, stderr = build(kflowc, path, tmp_path)
    assert "error KF023" in stderr and "defines no workflow" in stderr


def test_failed_build_keeps_previous_output(kflowc, write_workflow, tmp_path):
    out = tmp_path / "out.py"
    out.write_text("previous\n")
    path = write_workflow(
        """
        from kailash.workflow import AsyncWorkflowBuilder
        builder = AsyncWorkflowBuilder("bad")
        builder.add_async_code("a", "result = (")
        """
    )
    code, _, _ = kflowc("build", path, "-o", str(out))
    assert code == 2
    assert out.read_text() == "previous\n"
    assert [p for p in os.listdir(tmp_path) if p.startswith(".kflowc-")] == []


HEAD = ("from kailash.workflow import AsyncWorkflowBuilder, AsyncPatterns, AsyncRetryPolicy\n"
        'builder = AsyncWorkflowBuilder("bad")\n')


def first_error(kflowc, write_workflow, tmp_path, body: str) -> str:
    _, _, stderr = build(kflowc, write_workflow(HEAD + body), tmp_path)
    return stderr.splitlines()[0]


# -- defect 4: values that built, then crashed inside run() or kflowc ---------------------


@pytest.mark.parametrize(
    "body, message",
    [
        ('AsyncPatterns.retry_with_backoff(builder, "r", "result = 1", backoff_factor=0.5)',
         "KF016: backoff_factor must be a finite number >= 1, not 0.5"),
        ('AsyncPatterns.retry_with_backoff(builder, "r", "result = 1", initial_backoff=-1)',
         "KF016: initial_backoff must be a finite number >= 0, not -1"),
        ('AsyncPatterns.retry_with_backoff(builder, "r", "result = 1", max_backoff=float("inf"))',
         "KF016: max_backoff must be a finite number >= 0, not inf"),
        ('builder.add_async_code("a", "result = 1", timeout=float("nan"))',
         "KF011: timeout must be a positive number of seconds"),
        ('builder.add_async_code("a", "result = 1", timeout=-float("inf"))',
         "KF011: timeout must be a positive number of seconds"),
        ('AsyncPatterns.rate_limited(builder, "r", "result = 1", requests_per_second=float("inf"))',
         "KF016: requests_per_second must be a finite number"),
        ('AsyncPatterns.circuit_breaker(builder, "c", "result = 1", reset_timeout=float("nan"))',
         "KF016: reset_timeout must be a finite number"),
        ('builder.add_async_code("a", "result = 1", retry_policy=AsyncRetryPolicy(max_delay=1e400))',
         "KF011: max_delay must be a finite number >= 0, not inf"),
        ('builder.add_async_code("a", "result = 1", error_handler=__import__("kflow")'
         '.ErrorHandler("fallback", fallback_value=float("nan")))',
         "KF015: error handler: fallback_value holds nan"),
    ],
)
def test_an_invalid_value_is_a_located_error_at_the_call(kflowc, write_workflow, tmp_path,
                                                         body, message):
    first = first_error(kflowc, write_workflow, tmp_path, body + "\n")
    assert ":3:1: error " + message in first, first


async def test_infinity_means_no_limit_where_a_limit_is_meant():
    from kflow import AsyncLocalRuntime, AsyncWorkflowBuilder, compile_workflow

    b = AsyncWorkflowBuilder("w")
    inf = float("inf")
    b.add_async_code("a", "result = 1", timeout=inf)
    b.add_parallel_map("m", "async def process_item(i):\n    return i", timeout_per_item=inf)
    b.add_connection("a", "result", "m", "x")
    workflow = b.build()
    assert workflow.node("a").options.timeout is None
    assert workflow.node("m").params.timeout_per_item is None
    source = compile_workflow(workflow).source
    assert not re.search(r"\binf\b", source)  # (NODE_INFO and info= say "inf" too)
    compile(source, "out.py", "exec")
    envelope = await AsyncLocalRuntime().execute_workflow_async(workflow, {"items": [1]})
    assert envelope["status"] == "success", envelope["errors"]


# -- defect 5: names and text that crashed kflowc ---------------------------------------


@pytest.mark.parametrize(
    "body, message",
    [
        ('builder.add_parallel_map("m", "async def process_item(i):\\n    return i", '
         'input_field="class")', "KF016: input_field must be a Python name, not 'class'"),
        ('builder.add_async_code("a\\x00", "result = 1")', "KF012: node id contains a NUL"),
        ('builder.add_async_code("a\\udc80", "result = 1")',
         "KF012: node id contains a lone surrogate"),
        ('builder.add_async_code("a", "result = 1", description="x\\ud800")',
         "KF011: description contains a lone surrogate"),
        ('builder.add_async_code("a", "result = 1\\x00")', "KF010: code contains a NUL"),
        ('builder.add_async_code("a", "result = " + " + ".join(["x"] * 3000))',
         "KF001: node 'a': code is nested too deeply to compile"),
        ('builder.with_http_client("api", headers={"X-Trace": b"v"})\n'
         'builder.add_async_code("a", "result = api")',
         "KF019: resource 'api': headers['X-Trace'] holds a bytes"),
    ],
)
def test_a_bad_name_or_text_is_a_located_error(kflowc, write_workflow, tmp_path, body, message):
    first = first_error(kflowc, write_workflow, tmp_path, body + "\n")
    assert ":3:1: error " + message in first, first


def test_nul_or_surrogates_in_the_workflow_name(kflowc, write_workflow, tmp_path):
    path = write_workflow(
        "from kailash.workflow import AsyncWorkflowBuilder\n"
        'builder = AsyncWorkflowBuilder("w\\x00")\n'
    )
    _, _, stderr = build(kflowc, path, tmp_path)
    assert ":2:11: error KF011: workflow name contains a NUL character" in stderr


# -- defect 6: yield in node code ---------------------------------------------------------


def test_yield_in_node_code_is_a_compile_error(kflowc, write_workflow, tmp_path):
    first = first_error(kflowc, write_workflow, tmp_path,
                        'builder.add_async_code("a", """\nfor i in range(3):\n    yield i\n""")\n')
    assert ":5:5: error KF001: node 'a': code uses `yield`" in first, first


def test_yield_inside_a_function_the_code_defines_is_fine(kflowc, write_workflow, tmp_path):
    path = write_workflow(HEAD + 'builder.add_async_code("a", "def gen():\\n    yield 1\\n'
                          'result = list(gen())")\n')
    code, _, stderr = kflowc("build", path, "-o", str(tmp_path / "out.py"))
    assert code == 0, stderr


# -- defect 8: a workflow file that exits ------------------------------------------------


@pytest.mark.parametrize("call", ["sys.exit()", "sys.exit(0)", "raise SystemExit(3)"])
def test_a_workflow_file_that_calls_sys_exit_is_an_error(kflowc, write_workflow, tmp_path, call):
    path = write_workflow("import sys\n" + HEAD + call + "\n")
    _, _, stderr = build(kflowc, path, tmp_path)
    assert stderr.startswith(f"{path}:4:1: error KF022: "), stderr
    assert "while kflowc was loading it" in stderr


# -- issue 14.11: a misspelt keyword ------------------------------------------------------


@pytest.mark.parametrize(
    "body, message, suggestion",
    [
        ('builder.add_parallel_map("m", "async def process_item(i):\\n    return i", '
         "max_worker=5)", "KF016: add_parallel_map() has no option 'max_worker'",
         "did you mean 'max_workers'?"),
        ('builder.add_async_code("a", "result = 1", timeuot=5)',
         "KF011: add_async_code() has no option 'timeuot'", "did you mean 'timeout'?"),
        ('AsyncPatterns.rate_limited(builder, "r", "result = 1", request_per_second=5)',
         "KF016: rate_limited() has no option 'request_per_second'",
         "did you mean 'requests_per_second'?"),
        ('AsyncPatterns.circuit_breaker(builder, "c", "result = 1", treshold=3)',
         "KF016: circuit_breaker() has no option 'treshold'", "circuit_breaker() takes"),
        ('builder.add_async_code("a", "result = 1", retry_policy=AsyncRetryPolicy(max_attempt=2))',
         "KF011: RetryPolicy got an unexpected keyword 'max_attempt'",
         "did you mean 'max_attempts'?"),
    ],
)
def test_a_misspelt_keyword_is_a_located_error_with_a_suggestion(
        kflowc, write_workflow, tmp_path, body, message, suggestion):
    _, _, stderr = build(kflowc, write_workflow(HEAD + body + "\n"), tmp_path)
    first, *rest = stderr.splitlines()
    assert ":3:1: error " + message in first, stderr
    hint = next(line for line in rest if line.startswith("  hint:"))
    assert suggestion in hint, hint


def test_kf016_hint_lists_the_patterns_own_options(kflowc, write_workflow, tmp_path):
    _, _, stderr = build(kflowc, write_workflow(
        HEAD + 'AsyncPatterns.batch_processor(builder, "b", "x = 1", chunk_size=10)\n'), tmp_path)
    hint = next(line for line in stderr.splitlines() if line.startswith("  hint:"))
    assert "batch_processor() takes node_id, code, batch_size, flush_interval, timeout" in hint


def test_nested_triple_quotes_are_explained(kflowc, write_workflow, tmp_path):
    # The guide's "File Processing Pipeline" writes an SQL string in triple quotes inside
    # the triple-quoted code string (issue 14.13).
    path = write_workflow(
        '''
        from kailash.workflow import AsyncWorkflowBuilder
        builder = AsyncWorkflowBuilder("files")
        builder.add_async_code("store", """
            async with db.acquire() as conn:
                await conn.execute("""
                    INSERT INTO log (path) VALUES ($1)
                """, "p")
            result = 1
        """)
        '''.replace("'''", '"""')
    )
    _, _, stderr = build(kflowc, path, tmp_path)
    first = stderr.splitlines()[0]
    assert first.endswith(
        'is not valid Python: invalid syntax. Perhaps you forgot a comma? (the code string '
        'opened at line 3 holds """ at lines 5 and 7, which ends it early)'
    ), stderr
    assert "  hint: write the inner string with ''' (or the code string with ''')" in stderr


def test_top_level_await_is_explained(kflowc, write_workflow, tmp_path):
    path = write_workflow(
        """
        from kailash.workflow import AsyncWorkflowBuilder
        from kailash.runtime import AsyncLocalRuntime
        builder = AsyncWorkflowBuilder("w")
        builder.add_async_code("a", "result = 1")
        workflow = builder.build()
        result = await AsyncLocalRuntime().execute_workflow_async(workflow, {})
        """
    )
    _, _, stderr = build(kflowc, path, tmp_path)
    assert stderr.splitlines()[0].endswith(":6:10: error KF021: " + path
                                           + " is not valid Python: 'await' outside function")
    assert "a module cannot `await` at top level" in stderr
    assert "asyncio.run(main())" in stderr
