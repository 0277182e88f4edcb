"""Node fingerprints: a change to a node changes it and everything downstream, nothing else;
where a call sits in workflow.py changes nothing."""

from __future__ import annotations

from kflow import AsyncWorkflowBuilder, ErrorHandler
from kflow.fingerprint import node_fingerprints
from kflow.loader import load_workflow


def chain(b_code: str = "result = x + 1", **b_options) -> dict[str, str]:
    builder = AsyncWorkflowBuilder("fp")
    builder.add_async_code("a", "result = 1")
    builder.add_async_code("b", b_code, **b_options)
    builder.add_async_code("c", "result = y * 2")
    builder.add_async_code("side", "result = 5")
    builder.add_connection("a", "result", "b", "x")
    builder.add_connection("b", "result", "c", "y")
    return node_fingerprints(builder.build())


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {node for node in before if before[node] != after[node]}


def test_the_same_workflow_has_the_same_fingerprints() -> None:
    assert chain() == chain()
    assert all(len(fp) == 16 for fp in chain().values())


def test_a_changed_node_changes_itself_and_what_it_feeds() -> None:
    assert changed(chain(), chain("result = x + 2")) == {"b", "c"}


def test_options_are_part_of_a_node() -> None:
    assert changed(chain(), chain(timeout=5)) == {"b", "c"}
    fallback = ErrorHandler(handler_type="fallback", fallback_value=0)
    assert changed(chain(), chain(error_handler=fallback)) == {"b", "c"}


def test_where_the_calls_sit_in_the_file_changes_nothing(tmp_path) -> None:
    body = (
        "builder = AsyncWorkflowBuilder('fp')\n"
        "builder.add_async_code('a', 'result = 1')\n"
        "builder.add_async_code('b', 'result = x + 1')\n"
        "builder.add_connection('a', 'result', 'b', 'x')\n"
    )
    head = "from kailash.workflow import AsyncWorkflowBuilder\n"
    first, second = tmp_path / "one.py", tmp_path / "two.py"
    first.write_text(head + body)
    second.write_text(head + "\n\n# moved down\n\n" + body)
    assert node_fingerprints(load_workflow(str(first))) == node_fingerprints(
        load_workflow(str(second))
    )
