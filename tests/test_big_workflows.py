"""Big workflows take the parallel paths (analysis and black in a process per core):
they must give exactly what the serial paths give, errors included."""

from __future__ import annotations

import pytest

import kflow.parallel as parallel
from kflow import AsyncWorkflowBuilder, CompileError, compile_workflow

NODES = 80  # over parallel.PARALLEL_FROM


def big(broken: int | None = None) -> AsyncWorkflowBuilder:
    builder = AsyncWorkflowBuilder("big")
    builder.add_async_code("n0", "result = {'value': 0}")
    for i in range(1, NODES):
        code = f"total_{i} = x['value'] + {i}\nresult = {{'value': total_{i}}}"
        if i == broken:
            code = "result = ("
        builder.add_async_code(f"n{i}", code)
        builder.add_connection(f"n{(i - 1) // 2}", "result", f"n{i}", "x")
    return builder


def test_parallel_and_serial_builds_are_identical(monkeypatch):
    workflow = big().build()
    parallel_source = compile_workflow(workflow).source
    monkeypatch.setattr(parallel, "PARALLEL_FROM", 10**9)
    assert compile_workflow(workflow).source == parallel_source


def test_errors_come_back_from_the_workers():
    workflow = big(broken=40).build()
    with pytest.raises(CompileError) as info:
        compile_workflow(workflow)
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.code == "KF001" and "node 'n40'" in diagnostic.message
    assert diagnostic.location.file == __file__


def test_a_process_with_threads_never_forks_and_builds_the_same(monkeypatch):
    """fork copies a process mid-way through whatever its other threads hold (locks);
    with a thread running, the workers start another way, and the build is the same."""
    import threading

    workflow = big().build()
    monkeypatch.setattr(parallel, "PARALLEL_FROM", 10**9)
    serial = compile_workflow(workflow).source
    monkeypatch.undo()
    stop = threading.Event()
    helper = threading.Thread(target=stop.wait)
    helper.start()
    try:
        assert parallel.start_method() != "fork"
        assert compile_workflow(workflow).source == serial
    finally:
        stop.set()
        helper.join()
