"""The workflow as a graph: validation, order, and the stages and chains codegen emits.

A *chain* is a run of nodes that can only execute one after another (each has
exactly one predecessor, which feeds nothing else first). A chain compiles to
straight-line awaits; separate chains run as concurrent tasks that wait for the
chains they depend on. A workflow that is one chain needs no task at all.

A node every other node is upstream or downstream of (the source of a fan-out, the sink
of a fan-in) can never run beside anything, so codegen calls it straight from the wiring
between *stages*: what runs before it, and what after. Chains inside a stage then never
wait for a node outside it, and a fan-out's branches start with no wait at all.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass
from itertools import groupby

from kflow.errors import CompileError, error
from kflow.ir import Workflow


def predecessors(workflow: Workflow) -> dict[str, list[str]]:
    """Each node's sources, once each, in the order their first connection was added."""
    preds: dict[str, dict[str, None]] = {node.id: {} for node in workflow.nodes}
    for conn in workflow.connections:
        preds[conn.target].setdefault(conn.source)
    return {node_id: list(sources) for node_id, sources in preds.items()}


def successors(workflow: Workflow) -> dict[str, list[str]]:
    """Each node's targets, once each, in the order their first connection was added
    (dicts as ordered sets: a fan-out of thousands stays linear)."""
    succs: dict[str, dict[str, None]] = {node.id: {} for node in workflow.nodes}
    for conn in workflow.connections:
        succs[conn.source].setdefault(conn.target)
    return {node_id: list(targets) for node_id, targets in succs.items()}


def validate(workflow: Workflow) -> None:
    """Raise a located CompileError for the first problem of the graph: a duplicate id,
    a connection to an unknown node, an unknown required resource, a pattern whose
    nodes do not fit together, a cycle."""
    ids: set[str] = set()
    for node in workflow.nodes:
        if node.id in ids:
            raise error("KF004", f"duplicate node id {node.id!r}", node.location,
                        "give each node its own id")
        ids.add(node.id)
    for conn in workflow.connections:
        for role, node_id in (("source", conn.source), ("target", conn.target)):
            if node_id not in ids:
                raise error(
                    "KF003",
                    f"connection {role} {node_id!r} is not a node of workflow {workflow.name!r}",
                    conn.location,
                    _did_you_mean(node_id, ids) or "add the node before building, or fix the id",
                )
        if conn.source == conn.target:
            raise error("KF002", f"node {conn.source!r} is connected to itself", conn.location,
                        "a workflow is a DAG: feed the value forward to another node")
    resources = {r.name for r in workflow.resources}
    for node in workflow.nodes:
        for name in node.options.required_resources:
            if name not in resources:
                raise error(
                    "KF006", f"node {node.id!r} requires unknown resource {name!r}",
                    node.location,
                    _did_you_mean(name, resources)
                    or f"declare it first, e.g. builder.with_database({name!r}, ...)",
                )
    from kflow.kinds import kind_named

    problems = [d for node in workflow.nodes
                for d in kind_named(node.kind).check_graph(node, workflow)]
    if problems:
        raise CompileError(problems)
    topological_order(workflow)


def topological_order(workflow: Workflow) -> list[str]:
    """Node ids in dependency order, ties kept in the order the user added them."""
    preds = predecessors(workflow)
    succs = successors(workflow)
    remaining = {node_id: len(p) for node_id, p in preds.items()}
    ids = [node.id for node in workflow.nodes]
    position = {node_id: i for i, node_id in enumerate(ids)}
    # Positions of the nodes ready to run: a heap, so the earliest added comes first.
    ready = [i for i, node_id in enumerate(ids) if remaining[node_id] == 0]
    order: list[str] = []
    while ready:
        current = ids[heapq.heappop(ready)]
        order.append(current)
        for nxt in succs[current]:
            remaining[nxt] -= 1
            if remaining[nxt] == 0:
                heapq.heappush(ready, position[nxt])
    if len(order) != len(workflow.nodes):
        cycle = _find_cycle(workflow, {n for n, r in remaining.items() if r > 0})
        edges = set(zip(cycle, cycle[1:], strict=False))
        # Blame the connection that closed the cycle: the last one added.
        conn = next(
            (c for c in reversed(workflow.connections) if (c.source, c.target) in edges), None
        )
        raise error(
            "KF002",
            "connections form a cycle: " + " -> ".join(repr(n) for n in cycle),
            conn.location if conn else None,
            "a workflow is a DAG; remove one of these connections",
        )
    return order


def _find_cycle(workflow: Workflow, stuck: set[str]) -> list[str]:
    """A cycle among the nodes a topological sort could not place. Each of them has a
    predecessor among them (else it would have been placed), so walking predecessors
    from any one must come back to a node already seen: that loop is a cycle (nodes
    merely downstream of a cycle are never on the walk's loop)."""
    preds = predecessors(workflow)
    start = next(node.id for node in workflow.nodes if node.id in stuck)
    path, seen = [start], {start: 0}
    while True:
        nxt = next(p for p in preds[path[-1]] if p in stuck)
        if nxt in seen:
            loop = path[seen[nxt]:]
            loop.reverse()  # predecessor walk: read it forwards
            return [*loop, loop[0]]
        seen[nxt] = len(path)
        path.append(nxt)


def _did_you_mean(name: str, options: set[str]) -> str | None:
    import difflib

    close = difflib.get_close_matches(name, sorted(options), n=1)
    return f"did you mean {close[0]!r}?" if close else None


@dataclass(frozen=True)
class Chain:
    nodes: tuple[str, ...]
    waits_for: tuple[str, ...]  # nodes of other chains of its stage that must finish first


@dataclass(frozen=True)
class Stage:
    """One step of the wiring: a single chain runs inline; several run at once."""

    chains: tuple[Chain, ...]


def stages(workflow: Workflow) -> list[Stage]:
    """The workflow as stages in order (see module docstring): runs of nodes every other
    node is upstream or downstream of, and between them the chains of what may run at once."""
    order = topological_order(workflow)
    preds = predecessors(workflow)
    succs = successors(workflow)
    serial = _on_every_path(order, preds, succs)
    result: list[Stage] = []
    for inline, run in groupby(order, key=serial.__contains__):
        nodes = list(run)
        chains = [Chain(tuple(nodes), ())] if inline else _chains(nodes, preds, succs)
        result.append(Stage(tuple(chains)))
    return result


def _on_every_path(order: list[str], preds: dict[str, list[str]],
                   succs: dict[str, list[str]]) -> set[str]:
    """The nodes every other node is an ancestor or a descendant of (bit sets by position
    in `order`: a few big-int ORs per connection)."""
    position = {node_id: i for i, node_id in enumerate(order)}
    above: dict[str, int] = {}
    for node_id in order:
        bits = 0
        for pred in preds[node_id]:
            bits |= above[pred] | 1 << position[pred]
        above[node_id] = bits
    below: dict[str, int] = {}
    for node_id in reversed(order):
        bits = 0
        for succ in succs[node_id]:
            bits |= below[succ] | 1 << position[succ]
        below[node_id] = bits
    others = len(order) - 1
    return {n for n in order if above[n].bit_count() + below[n].bit_count() == others}


def _chains(group: list[str], preds: dict[str, list[str]],
            succs: dict[str, list[str]]) -> list[Chain]:
    """Split the nodes of one stage (in topological order) into chains; what they read
    from earlier stages has finished before the stage starts."""
    members_of = set(group)
    inside = {n: [p for p in preds[n] if p in members_of] for n in group}
    members: dict[int, list[str]] = defaultdict(list)
    chain_of: dict[str, int] = {}
    open_tail: set[str] = set()  # chain tails that may still be extended
    for node_id in group:
        (pred,) = inside[node_id] if len(inside[node_id]) == 1 else (None,)
        if pred is not None and pred in open_tail:
            index = chain_of[pred]
            open_tail.discard(pred)
        else:
            index = len(members)
        members[index].append(node_id)
        chain_of[node_id] = index
        open_tail.add(node_id)
        if not any(s in members_of for s in succs[node_id]):
            open_tail.discard(node_id)
    return [Chain(tuple(nodes), tuple(inside[nodes[0]]))
            for _, nodes in sorted(members.items())]
