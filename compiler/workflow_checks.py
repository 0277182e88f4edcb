"""Checks across nodes, once each node's code is analysed.

KF104: a connection path into an output whose keys are known (a dict literal, or a
pattern's fixed output) and lack it. Nodes whose own analysis failed are skipped, so
one problem does not hide another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kflow.errors import Diagnostic
from kflow.ir import Workflow
from kflow.values import did_you_mean

if TYPE_CHECKING:
    from kflow.analyze import NodeAnalysis
    from kflow.code_analysis import StaticKeys


def output_keys(analysis: NodeAnalysis) -> StaticKeys | None:
    """The keys a node's output is known to have before it runs, if any."""
    return analysis.kind.output_keys(analysis.node, analysis.code)


def bad_paths(workflow: Workflow, nodes: dict[str, NodeAnalysis]) -> list[Diagnostic]:
    found = []
    for conn in workflow.connections:
        source = nodes.get(conn.source)
        if source is None:
            continue
        keys = output_keys(source)
        for depth, key in enumerate(conn.path):
            if keys is None:
                break
            if key not in keys:
                walked = ".".join(("result", *conn.path[:depth]))
                found.append(Diagnostic(
                    "KF104", f"connection {conn.source!r} -> {conn.target!r}: {walked} has no "
                    f"key {key!r} (it has {', '.join(map(repr, keys)) or 'no keys'})",
                    conn.location,
                    did_you_mean(key, list(keys)) or "connect a key the output has",
                ))
                break
            keys = keys[key]
    return found
