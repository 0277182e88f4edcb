"""What a resume restores and what runs again: pure functions over the stored run and
compile-time data (each node's fingerprint and its upstream nodes).

The rules (docs/durable.md, "Resuming"):
- a node whose fingerprint changed runs again, and so does everything downstream of it;
- a node whose stored output did not round-trip through JSON runs again (its dependents that
  have outcomes keep them: they were computed from the value it had);
- a node without a stored outcome runs (it was running, or had not started, at the crash);
- every other stored outcome, a failure included, is restored (``retry_failed`` re-runs
  failures instead);
- stored nodes no longer in the workflow are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ._errors import InputsMismatch, WorkflowMismatch
from ._model import FAILED, RunRecord, StoredNode

START, RESUME, FINISHED = "start", "resume", "finished"


@dataclass(frozen=True)
class ResumePlan:
    restore: Mapping[str, StoredNode] = field(default_factory=dict)  # in workflow order
    rerun: Mapping[str, str] = field(default_factory=dict)  # stored, runs again: why
    dropped: tuple[str, ...] = ()  # stored, but no longer in the workflow

    @property
    def resumed(self) -> tuple[str, ...]:
        """The restored nodes, for the envelope's ``resumed``."""
        return tuple(self.restore)

    @property
    def discard(self) -> tuple[str, ...]:
        """Stored outcomes to delete as the resume starts: none of them will be used."""
        return (*self.rerun, *self.dropped)

    @property
    def messages(self) -> tuple[str, ...]:
        """One line per node that does not simply resume, to print on stderr."""
        lines = [f"node {node_id!r} runs again: {why}" for node_id, why in self.rerun.items()]
        lines += [f"node {node_id!r} is no longer in the workflow; its stored outcome is dropped"
                  for node_id in self.dropped]
        return tuple(lines)


@dataclass(frozen=True)
class Decision:
    action: str  # START (a new run) | RESUME | FINISHED (return the stored envelope)
    plan: ResumePlan = field(default_factory=ResumePlan)
    envelope: str | None = None  # FINISHED: the stored envelope's JSON text


def plan_resume(
    stored: Mapping[str, StoredNode],
    fingerprints: Mapping[str, str],
    upstream: Mapping[str, Iterable[str]],
    *,
    retry_failed: bool = False,
) -> ResumePlan:
    """Split the stored outcomes into restored and re-run ones.

    `fingerprints` lists every node of the workflow as built now (its order is the order of
    the answer); `upstream` maps a node to the nodes it takes inputs from or runs after.
    """
    downstream: dict[str, list[str]] = {}
    for node_id, sources in upstream.items():
        for source in sources:
            downstream.setdefault(source, []).append(node_id)

    changed = {n for n in fingerprints if n in stored and stored[n].fingerprint != fingerprints[n]}
    # A node's fingerprint covers those of its sources, so a change shows up in everything
    # downstream too: report it once, at the changed nodes nothing changed above.
    below = _downstream_of(changed, downstream)
    origins = [n for n in fingerprints if n in changed and n not in below]
    because: dict[str, str] = {}  # node -> the changed node upstream of it
    for origin in origins:  # workflow order: stable reasons
        todo = list(downstream.get(origin, ()))
        while todo:
            node_id = todo.pop()
            if node_id in because or node_id in origins:
                continue
            because[node_id] = origin
            todo.extend(downstream.get(node_id, ()))

    restore: dict[str, StoredNode] = {}
    rerun: dict[str, str] = {}
    for node_id in fingerprints:
        node = stored.get(node_id)
        if node is None:
            continue
        if node_id in because:
            rerun[node_id] = f"upstream node {because[node_id]!r} changed since the stored run"
        elif node_id in changed:
            rerun[node_id] = "it changed since the stored run"
        elif node.status != FAILED and not node.exact:
            rerun[node_id] = "its stored output did not round-trip through JSON"
        elif node.status == FAILED and retry_failed:
            rerun[node_id] = "it failed in the stored run"
        else:
            restore[node_id] = node
    dropped = tuple(n for n in stored if n not in fingerprints)
    return ResumePlan(restore, rerun, dropped)


def _downstream_of(nodes: Iterable[str], downstream: Mapping[str, list[str]]) -> set[str]:
    """Every node strictly downstream of one of `nodes`."""
    seen: set[str] = set()
    todo = [d for n in nodes for d in downstream.get(n, ())]
    while todo:
        node_id = todo.pop()
        if node_id not in seen:
            seen.add(node_id)
            todo.extend(downstream.get(node_id, ()))
    return seen


def decide(
    record: RunRecord | None,
    stored: Mapping[str, StoredNode],
    *,
    store: str,
    workflow: str,
    inputs_hash: str,
    fingerprints: Mapping[str, str],
    upstream: Mapping[str, Iterable[str]],
    retry_failed: bool = False,
) -> Decision:
    """Start, resume, or answer with the finished run's envelope (the run id is an
    idempotency key). Raises WorkflowMismatch / InputsMismatch (the CLI exits 2)."""
    if record is None:
        return Decision(START)
    run_id = record.run_id
    if record.workflow != workflow:
        raise WorkflowMismatch(
            store, f"run {run_id!r} belongs to workflow {record.workflow!r}, not {workflow!r}; "
            "pass another --run-id"
        )
    if record.inputs_hash != inputs_hash:
        raise InputsMismatch(
            store, f"run {run_id!r} was started with other inputs (inputs hash "
            f"{record.inputs_hash[:12]}, now {inputs_hash[:12]}); resume it with the inputs "
            "it started with, or pass another --run-id"
        )
    if record.finished:
        return Decision(FINISHED, envelope=record.envelope)
    return Decision(RESUME, plan_resume(stored, fingerprints, upstream, retry_failed=retry_failed))
