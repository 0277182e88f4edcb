"""`kflowc graph`: the workflow's DAG as Mermaid, Graphviz DOT, or SVG (via `dot`).

Nodes are labelled with their id and kind; an edge with the path it takes from the
source's output and the input it feeds (`result.user.name → who`); edges a pattern
adds only to order its nodes are dashed.
"""

from __future__ import annotations

import shutil
import subprocess

from kflow.errors import KflowError
from kflow.ir import ORDER_ONLY, Connection, Workflow

FORMATS = ("mermaid", "dot", "svg")


class GraphError(KflowError):
    """The graph cannot be drawn in the format asked for."""


def _kind(kind: str) -> str:
    from kflow.kinds import kind_named

    return kind_named(kind).label or kind.replace("_", " ")


def _edge_label(conn: Connection) -> str:
    return ".".join(("result", *conn.path)) + " → " + conn.input


def mermaid(workflow: Workflow) -> str:
    ids = {node.id: f"n{i}" for i, node in enumerate(workflow.nodes)}

    def text(value: str) -> str:
        return value.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")

    lines = ["flowchart TD"]
    for node in workflow.nodes:
        lines.append(f'    {ids[node.id]}["{text(node.id)}<br/><i>{_kind(node.kind)}</i>"]')
    for conn in workflow.connections:
        source, target = ids[conn.source], ids[conn.target]
        if conn.input == ORDER_ONLY:
            lines.append(f"    {source} -.-> {target}")
        else:
            lines.append(f'    {source} -->|"{text(_edge_label(conn))}"| {target}')
    return "\n".join(lines) + "\n"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def dot(workflow: Workflow) -> str:
    lines = [
        f"digraph {_quote(workflow.name)} {{",
        "    rankdir=TB;",
        '    node [shape=box, style=rounded, fontname="Helvetica"];',
        '    edge [fontname="Helvetica", fontsize=10];',
    ]
    for node in workflow.nodes:
        label = f"{node.id}\n{_kind(node.kind)}"
        lines.append(f"    {_quote(node.id)} [label={_quote(label)}];")
    for conn in workflow.connections:
        attrs = ("style=dashed" if conn.input == ORDER_ONLY
                 else f"label={_quote(_edge_label(conn))}")
        lines.append(f"    {_quote(conn.source)} -> {_quote(conn.target)} [{attrs}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def svg(workflow: Workflow) -> str:
    executable = shutil.which("dot")
    if executable is None:
        raise GraphError(
            "--format svg needs Graphviz's `dot`, which is not installed "
            "(Debian: apt-get install graphviz); --format dot writes the graph for it"
        )
    done = subprocess.run([executable, "-Tsvg"], input=dot(workflow), capture_output=True,
                          text=True, timeout=60)
    if done.returncode != 0:
        raise GraphError(f"dot failed: {done.stderr.strip()}")
    return done.stdout


def render(workflow: Workflow, fmt: str) -> str:
    return {"mermaid": mermaid, "dot": dot, "svg": svg}[fmt](workflow)
