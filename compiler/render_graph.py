"""`kflowc graph`: the workflow's DAG as Mermaid, Graphviz DOT, or SVG (via `dot`).

Nodes are labelled with their id (bold) over their kind (smaller, grey); an edge with
the key it reads from the source's output and the input it feeds (`user.name → who`,
`results → items`; `result → x` for the whole output); edges a pattern adds only to
order its nodes are dashed, and a legend says so when there are any.
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
    """The key the connection reads (a parallel map's `results`, not `result.results`),
    or `result` for the whole output, and the input it feeds."""
    return (".".join(conn.path) or "result") + " → " + conn.input


_LEGEND = "order only: a pattern's own sequence, no data passed"


def mermaid(workflow: Workflow) -> str:
    ids = {node.id: f"n{i}" for i, node in enumerate(workflow.nodes)}

    def text(value: str) -> str:
        return value.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")

    lines = ["flowchart TD"]
    for node in workflow.nodes:
        lines.append(f'    {ids[node.id]}["<b>{text(node.id)}</b><br/><i>{_kind(node.kind)}</i>"]')
    dashed = False
    for conn in workflow.connections:
        source, target = ids[conn.source], ids[conn.target]
        if conn.input == ORDER_ONLY:
            lines.append(f"    {source} -.-> {target}")
            dashed = True
        else:
            lines.append(f'    {source} -->|"{text(_edge_label(conn))}"| {target}')
    if dashed:
        lines += ['    subgraph legend["legend"]', "        direction LR",
                  '        legend_a[" "] -.->|"' + text(_LEGEND) + '"| legend_b[" "]',
                  "    end", "    style legend fill:none,stroke:#bbbbbb"]
    return "\n".join(lines) + "\n"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _html(value: str) -> str:
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def dot(workflow: Workflow) -> str:
    # nodesep/ranksep: room between a fan-out's edges, so their labels stand apart.
    lines = [
        f"digraph {_quote(workflow.name)} {{",
        "    rankdir=TB;",
        "    nodesep=0.9;",
        "    ranksep=0.7;",
        '    node [shape=box, style=rounded, fontname="Helvetica"];',
        '    edge [fontname="Helvetica", fontsize=10];',
    ]
    for node in workflow.nodes:
        label = (f'<<b>{_html(node.id)}</b><br/><font point-size="10" color="#666666">'
                 f"{_html(_kind(node.kind))}</font>>")
        lines.append(f"    {_quote(node.id)} [label={label}];")
    dashed = False
    for conn in workflow.connections:
        if conn.input == ORDER_ONLY:
            attrs, dashed = "style=dashed", True
        else:  # padded: a label beside its edge, not on it
            attrs = f"label={_quote(' ' + _edge_label(conn) + ' ')}"
        lines.append(f"    {_quote(conn.source)} -> {_quote(conn.target)} [{attrs}];")
    if dashed:
        lines += [
            "    subgraph cluster_legend {",
            '        label="legend"; fontname="Helvetica"; fontsize=10; color="#bbbbbb";',
            '        legend_a [shape=point, width=0.05, label=""];',
            '        legend_b [shape=point, width=0.05, label=""];',
            "        { rank=same; legend_a; legend_b; }",
            f"        legend_a -> legend_b [style=dashed, label={_quote(' ' + _LEGEND)}];",
            "    }",
        ]
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
