"""Coming from Kailash: `builder.add_node("AsyncPythonCodeNode" | "PythonCodeNode", id,
{"code": ...})` builds a code node (issue 14.8); any other node type is a located error;
`await get_resource("name")` in node code is the declared resource (issue 14.7)."""

from __future__ import annotations

import threading

import pytest

from kflow import AsyncLocalRuntime, AsyncWorkflowBuilder, CompileError


async def run(builder: AsyncWorkflowBuilder, inputs: dict | None = None) -> dict:
    return await AsyncLocalRuntime().execute_workflow_async(builder.build(), inputs or {})


async def test_async_python_code_node_is_a_code_node():
    builder = AsyncWorkflowBuilder("kailash")
    builder.add_node("AsyncPythonCodeNode", "fetch", {
        "code": "await asyncio.sleep(0)\nresult = {'n': n * 2}",
        "timeout": 5,
    })
    builder.add_node("AsyncPythonCodeNode", "use", {"code": "result = data['n'] + 1"})
    builder.add_connection("fetch", "result", "use", "data")
    envelope = await run(builder, {"n": 4})
    assert envelope["status"] == "success"
    assert envelope["results"] == {"fetch": {"n": 8}, "use": 9}


async def test_python_code_node_runs_its_sync_code_off_the_event_loop():
    # The sync node blocks until the async node, on the loop, sets the event: run on the
    # loop itself it would wait out its 5 s and report False.
    builder = AsyncWorkflowBuilder("kailash")
    builder.add_node("PythonCodeNode", "blocking", {"code": """
import threading
result = {"released": ready.wait(5), "thread": threading.current_thread().name}
"""})
    builder.add_async_code("setter", "await asyncio.sleep(0.01)\nready.set()\nresult = 1")
    envelope = await run(builder, {"ready": threading.Event()})
    assert envelope["status"] == "success", envelope["errors"]
    assert envelope["results"]["blocking"]["released"] is True
    assert envelope["results"]["blocking"]["thread"] != threading.current_thread().name


async def test_python_code_node_errors_name_the_users_line():
    builder = AsyncWorkflowBuilder("kailash")
    builder.add_node("PythonCodeNode", "calc", {"code": """
x = 1
result = x / 0
"""})
    line = test_python_code_node_errors_name_the_users_line.__code__.co_firstlineno + 4
    envelope = await run(builder)
    assert envelope["errors"]["calc"] == (
        f"test_kailash_nodes.py:{line}: ZeroDivisionError: division by zero"
    )


def test_await_in_python_code_node_is_a_located_error():
    builder = AsyncWorkflowBuilder("kailash")
    with pytest.raises(CompileError) as caught:
        builder.add_node("PythonCodeNode", "calc", {"code": """
x = 1
result = await fetch(x)
"""})
    line = test_await_in_python_code_node_is_a_located_error.__code__.co_firstlineno + 5
    (d,) = caught.value.diagnostics
    assert (d.code, d.location.line) == ("KF011", line)
    assert d.message == "node 'calc': PythonCodeNode code is plain (sync) code and cannot use `await`"
    assert "AsyncPythonCodeNode" in d.hint


def test_other_node_types_name_the_supported_ones_and_the_guides_equivalent():
    builder = AsyncWorkflowBuilder("kailash")
    with pytest.raises(CompileError) as caught:
        builder.add_node("HTTPRequestNode", "get", {"url": "https://example.com"})
    line = test_other_node_types_name_the_supported_ones_and_the_guides_equivalent.__code__.co_firstlineno + 3
    (d,) = caught.value.diagnostics
    assert (d.code, d.location.line, d.location.file.rsplit("/", 1)[-1]) == (
        "KF011", line, "test_kailash_nodes.py")
    assert d.message == ("add_node(): kflow has no node type 'HTTPRequestNode'; it supports "
                         "'AsyncPythonCodeNode', 'PythonCodeNode'")
    assert "with_http_client" in d.hint and "add_async_code" in d.hint
    with pytest.raises(CompileError) as caught:
        builder.add_node("AsyncPythonCodeNod", "x", {"code": "result = 1"})
    assert "did you mean 'AsyncPythonCodeNode'?" in caught.value.diagnostics[0].hint


def test_misspelt_config_key_of_a_code_node():
    builder = AsyncWorkflowBuilder("kailash")
    with pytest.raises(CompileError) as caught:
        builder.add_node("AsyncPythonCodeNode", "x", {"code": "result = 1", "timeuot": 3})
    (d,) = caught.value.diagnostics
    assert d.message == "add_node(): AsyncPythonCodeNode has no config key 'timeuot'"
    assert d.hint.startswith("did you mean 'timeout'?")


def test_kflowc_builds_a_python_code_node_workflow(kflowc, write_workflow, tmp_path):
    import subprocess
    import sys

    path = write_workflow('''
        from kailash.workflow import AsyncWorkflowBuilder
        builder = AsyncWorkflowBuilder("k")
        builder.add_node("PythonCodeNode", "slow", {"code": """
        time.sleep(0.01)
        result = {"n": n}
        """})
        workflow = builder.build()
    ''')
    out = tmp_path / "out.py"
    code, _, stderr = kflowc("build", path, "-o", str(out))
    assert code == 0, stderr
    text = out.read_text()
    assert "@rt.off_loop\ndef node_slow(*, n):\n" in text
    done = subprocess.run([sys.executable, str(out), "--inputs", '{"n": 3}'],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert '"slow": {\n      "n": 3\n    }' in done.stdout
    # time.sleep is fine in code that runs in a thread: no KF108.
    code, stdout, _ = kflowc("check", path)
    assert "KF108" not in stdout


def make_store():
    return {"k": 41}


async def test_get_resource_gives_the_declared_resource():
    # Kailash's `await get_resource("name")` (issue 14.7): resolved when compiling.
    builder = AsyncWorkflowBuilder("kailash")
    builder.require_resource("store", make_store)
    builder.add_async_code("same_name", """
store = await get_resource("store")
result = store["k"] + 1
""")
    builder.add_node("AsyncPythonCodeNode", "other_name", {"code": """
s = await get_resource('store')
result = s["k"]
"""})
    envelope = await run(builder)
    assert envelope["status"] == "success", envelope["errors"]
    assert envelope["results"] == {"same_name": 42, "other_name": 41}
    from kflow import compile_workflow

    source = compile_workflow(builder.build()).source
    assert "async def node_same_name(*, store):\n    store = store\n" in source
    assert "get_resource" not in source


def test_get_resource_of_an_undeclared_name_is_a_located_error():
    builder = AsyncWorkflowBuilder("kailash")
    builder.require_resource("store", make_store)
    builder.add_async_code("a", """
x = 1
db = await get_resource("stor")
result = db
""")
    line = test_get_resource_of_an_undeclared_name_is_a_located_error.__code__.co_firstlineno + 5
    from kflow import compile_workflow

    with pytest.raises(CompileError) as caught:
        compile_workflow(builder.build())
    (d,) = caught.value.diagnostics
    assert (d.code, d.location.line, d.location.col) == ("KF006", line, 5)
    assert d.message == ("node 'a': get_resource('stor') asks for a resource the workflow "
                         "does not declare")
    assert d.hint == "did you mean 'store'?"


def test_get_resource_with_a_computed_name_is_a_located_error():
    builder = AsyncWorkflowBuilder("kailash")
    builder.require_resource("store", make_store)
    builder.add_async_code("a", "name = 'store'\nresult = await get_resource(name)")
    from kflow import compile_workflow

    with pytest.raises(CompileError) as caught:
        compile_workflow(builder.build())
    (d,) = caught.value.diagnostics
    assert d.code == "KF006"
    assert d.message == ("node 'a': the resource's name must be a string literal, such as "
                         "get_resource('db')")
