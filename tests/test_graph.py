"""`kflowc graph`: outputs parsed back, not eyeballed."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kflow import AsyncWorkflowBuilder, CompileError

WORKFLOW = str(Path(__file__).resolve().parent.parent / "golden/guide_resilient_service/workflow.py")


def test_mermaid(kflowc):
    code, stdout, _ = kflowc("graph", WORKFLOW)
    assert code == 0
    lines = stdout.splitlines()
    assert lines[0] == "flowchart TD"
    found = re.findall(r'^\s+(n\d+)\["<b>([^<"]+)</b><br/><i>([^<]+)</i>"\]$', stdout, re.M)
    nodes = {node: name for node, name, _ in found}
    assert found[0][2] == "circuit breaker"
    assert nodes == {"n0": "primary_service", "n1": "try_primary", "n2": "use_backup",
                     "n3": "cache_check", "n4": "fetch_fresh", "n5": "cache_store"}
    edges = re.findall(r'^\s+(n\d+) -->\|"([^"]+)"\| (n\d+)$', stdout, re.M)
    assert edges == [("n0", "result → primary_result", "n1"),
                     ("n2", "result → backup_result", "n3")]
    dashed = re.findall(r"^\s+(n\d+) -\.-> (n\d+)$", stdout, re.M)
    assert dashed == [("n1", "n2"), ("n3", "n4"), ("n4", "n5")]
    assert "circuit breaker" in stdout


def test_dot(kflowc, tmp_path):
    out = tmp_path / "g.dot"
    assert kflowc("graph", "--format", "dot", "-o", str(out), WORKFLOW)[0] == 0
    text = out.read_text()
    assert text.startswith('digraph "service_integration" {')
    labels = dict(re.findall(r'^\s+"([^"]+)" \[label=<(.+)>\];$', text, re.M))
    # The id and the kind styled apart: bold over small grey.
    assert labels["primary_service"] == (
        '<b>primary_service</b><br/><font point-size="10" color="#666666">circuit breaker'
        '</font>')
    edges = re.findall(r'^\s+"([^"]+)" -> "([^"]+)" \[(.+)\];$', text, re.M)
    assert ("primary_service", "try_primary", 'label=" result → primary_result "') in edges
    assert ("try_primary", "use_backup", "style=dashed") in edges


def test_svg_with_graphviz(kflowc):
    assert shutil.which("dot"), "Graphviz's dot is needed: scripts/test.sh installs it"
    code, stdout, _ = kflowc("graph", "--format", "svg", WORKFLOW)
    assert code == 0
    root = ET.fromstring(stdout[stdout.index("<svg"):])
    titles = {t.text for t in root.iter("{http://www.w3.org/2000/svg}title")}
    assert {"primary_service", "cache_store", "primary_service&#45;&gt;try_primary"} & titles


def test_svg_without_graphviz_says_what_to_do(kflowc, monkeypatch):
    import kflow.render_graph as render_graph

    monkeypatch.setattr(render_graph.shutil, "which", lambda name: None)
    code, stdout, stderr = kflowc("graph", "--format", "svg", WORKFLOW)
    assert code == 2 and stdout == ""
    assert "needs Graphviz's `dot`" in stderr and "apt-get install graphviz" in stderr


def _nodes(ids: list[str], edges: list[tuple[str, str]]) -> AsyncWorkflowBuilder:
    """Code nodes `ids`, each target reading its source as `from_<source>`."""
    b = AsyncWorkflowBuilder("w")
    for node_id in ids:
        b.add_async_code(node_id, "result = 1")
    for source, target in edges:
        b.add_connection(source, None, target, f"from_{source}")
    return b


def test_a_cycle_with_a_branch_hanging_off_it_is_reported():
    # Found by tests/test_properties.py: a node downstream of a cycle is stuck too, but
    # it is not on the cycle, and the search must not start walking into it.
    b = _nodes(["rt", "a", "a0"], [("rt", "a"), ("rt", "a0"), ("a0", "rt")])
    with pytest.raises(CompileError) as info:
        b.build()
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.code == "KF002"
    assert diagnostic.message == "connections form a cycle: 'a0' -> 'rt' -> 'a0'"


def test_edges_read_keys_and_dashed_edges_have_a_legend(kflowc):
    # Issue 14.16: `results` is the key the connection reads; a legend for dashed edges.
    mapped = str(Path(__file__).resolve().parent.parent / "golden/guide_file_processing/workflow.py")
    code, stdout, _ = kflowc("graph", "--format", "dot", mapped)
    assert code == 0
    assert '"process_files" -> "store_results" [label=" results → results "];' in stdout
    assert '"scan_files" -> "process_files" [label=" files → items "];' in stdout
    assert "cluster_legend" not in stdout  # no dashed edge, no legend
    code, stdout, _ = kflowc("graph", "--format", "dot", WORKFLOW)
    assert ("legend_a -> legend_b [style=dashed, label=\" order only: a pattern's own "
            'sequence, no data passed"];') in stdout
    code, stdout, _ = kflowc("graph", WORKFLOW)
    assert ("legend_a[\" \"] -.->|\"order only: a pattern's own sequence, no data passed\"| "
            'legend_b[" "]') in stdout


def test_fan_out_labels_do_not_overlap(kflowc):
    assert shutil.which("dot"), "Graphviz's dot is needed: scripts/test.sh installs it"
    fan = str(Path(__file__).resolve().parent.parent / "golden/fan_out_fan_in/workflow.py")
    code, stdout, _ = kflowc("graph", "--format", "svg", fan)
    assert code == 0
    root = ET.fromstring(stdout[stdout.index("<svg"):])
    ns = "{http://www.w3.org/2000/svg}"
    boxes = []
    for group in root.iter(f"{ns}g"):
        if group.get("class") != "edge":
            continue
        for label in group.iter(f"{ns}text"):
            x, y = float(label.get("x")), float(label.get("y"))
            # Helvetica at size 10: at most 5.5 points a character; 10 points between.
            width = 5.5 * len((label.text or "").strip()) + 10
            boxes.append((x - width / 2, x + width / 2, y - 10, y))
    assert len(boxes) == 7
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            apart = a[1] <= b[0] or b[1] <= a[0] or a[3] <= b[2] or b[3] <= a[2]
            assert apart, f"edge labels too close: {a} {b}"


# -- stages: what the wiring runs inline, and what at once ------------------------------


def _stages(builder: AsyncWorkflowBuilder) -> list[list[tuple[tuple[str, ...], tuple[str, ...]]]]:
    from kflow import graph

    return [[(chain.nodes, chain.waits_for) for chain in stage.chains]
            for stage in graph.stages(builder.build())]


def _fan(width: int, *, sink: bool = True) -> AsyncWorkflowBuilder:
    b = AsyncWorkflowBuilder("fan")
    b.add_async_code("source", "result = 1")
    for i in range(width):
        b.add_async_code(f"m{i}", "result = x + 1")
        b.add_connection("source", "result", f"m{i}", "x")
    if sink:
        b.add_async_code("sink", "result = " + " + ".join(f"x{i}" for i in range(width)))
        for i in range(width):
            b.add_connection(f"m{i}", "result", "sink", f"x{i}")
    return b


def test_a_fan_out_and_in_calls_its_source_and_sink_inline_and_its_branches_with_no_wait():
    assert _stages(_fan(3)) == [
        [(("source",), ())],
        [(("m0",), ()), (("m1",), ()), (("m2",), ())],
        [(("sink",), ())],
    ]


def test_a_chain_is_one_inline_stage_and_independent_nodes_one_stage_at_once():
    assert _stages(_nodes(["a", "b", "c"], [("a", "b"), ("b", "c")])) == [
        [(("a", "b", "c"), ())]]
    assert _stages(_nodes(["a", "b"], [])) == [[(("a",), ()), (("b",), ())]]


def test_a_chain_inside_a_stage_waits_only_for_nodes_of_that_stage():
    # source -> (a -> c, b), c and b -> sink: c reads a and b, so its chain waits for b,
    # never for the source, which the stage before has run.
    b = _nodes(["source", "a", "b", "c", "sink"],
               [("source", "a"), ("source", "b"), ("a", "c"), ("b", "c"), ("c", "sink")])
    assert _stages(b) == [
        [(("source",), ())],
        [(("a",), ()), (("b",), ())],
        [(("c", "sink"), ())],
    ]


@st.composite
def dags(draw: st.DrawFn) -> tuple[int, set[tuple[int, int]]]:
    size = draw(st.integers(1, 9))
    pairs = [(i, j) for i in range(size) for j in range(i + 1, size)]
    edges = draw(st.sets(st.sampled_from(pairs), max_size=len(pairs))) if pairs else set()
    return size, edges


@settings(max_examples=150, deadline=None)
@given(dags())
def test_stages_keep_every_dependency_and_serialise_only_what_could_never_overlap(dag):
    size, edges = dag
    order = list(range(size))
    b = _nodes([f"n{i}" for i in order], [(f"n{i}", f"n{j}") for i, j in sorted(edges)])
    reach = {i: {j for (a, j) in edges if a == i} for i in order}
    for k in order:  # transitive closure; nodes are numbered in a topological order
        for i in order:
            if k in reach[i]:
                reach[i] |= reach[k]

    def related(i: int, j: int) -> bool:
        return j in reach[i] or i in reach[j]

    where: dict[int, tuple[int, int, int]] = {}  # node -> (stage, chain, position)
    stages = _stages(b)
    for s, stage in enumerate(stages):
        for c, (nodes, _) in enumerate(stage):
            for p, node_id in enumerate(nodes):
                assert int(node_id[1:]) not in where
                where[int(node_id[1:])] = (s, c, p)
    assert sorted(where) == order
    for i, j in edges:  # j reads i: i has ended before j starts
        (si, ci, pi), (sj, cj, pj) = where[i], where[j]
        waits = stages[sj][cj][1]
        assert si < sj or (si == sj and ((ci == cj and pi < pj) or (pj == 0 and f"n{i}" in waits)))
    for s, stage in enumerate(stages):
        for nodes, waits in stage:
            if len(stage) > 1:
                assert all(where[int(w[1:])][0] == s for w in waits)
            else:  # inline: nothing could ever run beside these nodes
                assert all(related(int(n[1:]), other) for n in nodes for other in order
                           if other != int(n[1:]))
    for i in order:  # and no node that nothing could run beside is left in a task
        if all(related(i, other) for other in order if other != i):
            assert len(stages[where[i][0]]) == 1
