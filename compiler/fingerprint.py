"""Node fingerprints: what a durable run's stored outcome of a node was computed from.

A node's fingerprint hashes its own IR (kind, code, parameters, options; never
source positions, so moving a call in workflow.py changes nothing) together with,
for each connection into it, the path, the input name and the fingerprint of the
source. A change to a node therefore changes the fingerprint of everything
downstream of it, which is the rule resuming a run follows: a stored outcome is
restored only if the node's fingerprint is the one the module was built with.
Resource settings are left out: they are run-time configuration (any of them can
come from the environment), not part of what a node computes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from kflow import graph
from kflow.ir import Workflow
from kflow.ir_json import encode

# Fields that say where something was written, not what it means.
_POSITIONS = frozenset({"location", "origin", "exact"})


def _meaning(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _meaning(v) for k, v in value.items() if k not in _POSITIONS}
    if isinstance(value, list):
        return [_meaning(v) for v in value]
    return value


def node_fingerprints(workflow: Workflow) -> dict[str, str]:
    """node id -> a short hex digest, for every node of `workflow`."""
    incoming: dict[str, list[tuple[str, list[str], str]]] = {n.id: [] for n in workflow.nodes}
    for conn in workflow.connections:
        incoming[conn.target].append((conn.source, list(conn.path), conn.input))
    by_id = {node.id: node for node in workflow.nodes}
    prints: dict[str, str] = {}
    for node_id in graph.topological_order(workflow):
        feeds = sorted(
            (prints[source], path, name) for source, path, name in incoming[node_id]
        )
        text = json.dumps([_meaning(encode(by_id[node_id])), feeds], sort_keys=True,
                          separators=(",", ":"), ensure_ascii=False)
        prints[node_id] = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return prints
