"""require_resource: a factory, health check and cleanup inlined into the module."""

from __future__ import annotations

from kflow import AsyncLocalRuntime, AsyncWorkflowBuilder, compile_workflow

PREFIX = "queue"


class Queue:
    def __init__(self, name):
        self.name = name
        self.items = []
        self.closed = False


def make_queue():
    return Queue(f"{PREFIX}-main")


def queue_is_healthy(queue):
    return not queue.closed


async def close_queue(queue):
    queue.closed = True


def builder() -> AsyncWorkflowBuilder:
    b = AsyncWorkflowBuilder("custom")
    b.require_resource("jobs", make_queue, health_check=queue_is_healthy,
                       cleanup_handler=close_queue)
    b.add_async_code("push", "jobs.items.append(job)\nresult = jobs")
    return b


def test_factory_and_its_dependencies_are_inlined():
    source = compile_workflow(builder().build()).source
    assert "def make_queue():" in source and "class Queue:" in source
    assert "PREFIX = 'queue'" in source or 'PREFIX = "queue"' in source
    assert '"jobs": rt.CustomResource(' in source
    # Nothing is imported from the test module: it is all inlined.
    assert "import test_custom_resource" not in source
    assert "from test_custom_resource import" not in source


async def test_custom_resource_is_made_checked_and_cleaned_up():
    envelope = await AsyncLocalRuntime().execute_workflow_async(builder().build(), {"job": 7})
    assert envelope["status"] == "success", envelope["errors"]
    queue = envelope["results"]["push"]
    assert queue.name == "queue-main" and queue.items == [7]
    assert queue.closed is True


async def test_long_lived_resources_are_shared_by_runs_and_left_open():
    b = AsyncWorkflowBuilder("long_lived")
    b.require_resource("jobs", make_queue, cleanup_handler=close_queue)
    b.add_async_code("use", "result = jobs")
    module = AsyncLocalRuntime().module(b.build())

    each_run = [(await module.run({}))["results"]["use"] for _ in range(2)]
    assert each_run[0] is not each_run[1] and all(q.closed for q in each_run)

    kept = module.open_resources()
    shared = [(await module.run({}, resources=kept))["results"]["use"] for _ in range(2)]
    assert shared[0] is shared[1] and not shared[0].closed
    await kept.aclose()
    assert shared[0].closed
