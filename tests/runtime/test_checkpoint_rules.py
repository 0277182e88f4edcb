"""The pure parts of durable runs: resume decisions, inputs hashing, URLs, durations, JSON."""

from __future__ import annotations

import datetime
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kflow_runtime.checkpoint import (
    BadStoreURL,
    ChunkRow,
    InputsMismatch,
    RunRecord,
    StoredItems,
    StoredNode,
    WorkflowMismatch,
    decide,
    inputs_hash,
    mask,
    parse_duration,
    parse_store_url,
    plan_resume,
)
from kflow_runtime.checkpoint._codec import encode, plain_dumps
from kflow_runtime.durable import dumps as envelope_dumps


def node(node_id: str, fingerprint: str = "f", status: str = "success", *,
         exact: bool = True, output: str | None = "1", error: str | None = None) -> StoredNode:
    return StoredNode(node_id, fingerprint, status, output, exact, error, 1, 0.0, 0.1)


def record(status: str = "running", *, workflow: str = "w", digest: str = "h") -> RunRecord:
    return RunRecord("r1", workflow, digest, status, 0.0, 1.0, None, 1, "host:1", "0", '{"ok": 1}')


CHAIN_UP = {"b": ["a"], "c": ["b"], "d": ["c"]}
CHAIN_FP = {"a": "fa", "b": "fb", "c": "fc", "d": "fd"}


def stored_as(fingerprints: dict[str, str], **overrides: StoredNode) -> dict[str, StoredNode]:
    stored = {n: node(n, fp) for n, fp in fingerprints.items()}
    stored.update(overrides)
    return stored


# -- plan_resume ------------------------------------------------------------------------------


def test_every_stored_outcome_with_its_fingerprint_is_restored() -> None:
    plan = plan_resume(stored_as(CHAIN_FP), CHAIN_FP, CHAIN_UP)
    assert plan.resumed == ("a", "b", "c", "d")
    assert plan.rerun == {} and plan.messages == () and plan.discard == ()


def test_nodes_without_a_stored_outcome_simply_run() -> None:
    stored = {n: node(n, CHAIN_FP[n]) for n in ("a", "b")}  # killed while c ran
    plan = plan_resume(stored, CHAIN_FP, CHAIN_UP)
    assert plan.resumed == ("a", "b")
    assert plan.rerun == {} and plan.messages == ()


def test_a_changed_node_reruns_with_everything_downstream_and_says_why() -> None:
    now = {**CHAIN_FP, "b": "fb2"}
    plan = plan_resume(stored_as(CHAIN_FP), now, CHAIN_UP)
    assert plan.resumed == ("a",)
    assert plan.messages == (
        "node 'b' runs again: it changed since the stored run",
        "node 'c' runs again: upstream node 'b' changed since the stored run",
        "node 'd' runs again: upstream node 'b' changed since the stored run",
    )
    assert plan.discard == ("b", "c", "d")


def test_a_change_on_one_branch_leaves_the_other_branch_restored() -> None:
    up = {"b": ["a"], "c": ["a"], "d": ["b"], "e": ["c", "d"]}
    before = {"a": "1", "b": "2", "c": "3", "d": "4", "e": "5"}
    plan = plan_resume(stored_as(before), {**before, "c": "3x"}, up)
    assert plan.resumed == ("a", "b", "d")
    assert list(plan.rerun) == ["c", "e"]
    assert plan.rerun["e"] == "upstream node 'c' changed since the stored run"


def test_an_output_that_did_not_round_trip_reruns_that_node_only() -> None:
    stored = stored_as(CHAIN_FP, b=node("b", "fb", exact=False))
    plan = plan_resume(stored, CHAIN_FP, CHAIN_UP)
    assert plan.resumed == ("a", "c", "d")
    assert plan.messages == ("node 'b' runs again: its stored output did not round-trip through JSON",)


def test_a_stored_failure_is_restored_unless_failures_are_retried() -> None:
    stored = {"a": node("a", "fa"), "b": node("b", "fb", "failed", output=None, error="boom")}
    assert plan_resume(stored, CHAIN_FP, CHAIN_UP).resumed == ("a", "b")
    retried = plan_resume(stored, CHAIN_FP, CHAIN_UP, retry_failed=True)
    assert retried.resumed == ("a",)
    assert retried.messages == ("node 'b' runs again: it failed in the stored run",)


def test_stored_nodes_no_longer_in_the_workflow_are_dropped() -> None:
    stored = stored_as(CHAIN_FP, gone=node("gone"))
    plan = plan_resume(stored, CHAIN_FP, CHAIN_UP)
    assert plan.dropped == ("gone",) and "gone" in plan.discard
    assert plan.messages == ("node 'gone' is no longer in the workflow; its stored outcome is dropped",)


# -- decide -----------------------------------------------------------------------------------


def decision(rec: RunRecord | None, **kwargs: object):  # noqa: ANN201
    options = dict(store="runs.db", workflow="w", inputs_hash="h", fingerprints=CHAIN_FP,
                   upstream=CHAIN_UP)
    options.update(kwargs)
    return decide(rec, stored_as(CHAIN_FP), **options)  # type: ignore[arg-type]


def test_a_run_id_never_seen_starts_a_run() -> None:
    assert decision(None).action == "start"


def test_a_crashed_run_resumes() -> None:
    result = decision(record())
    assert result.action == "resume" and result.plan.resumed == ("a", "b", "c", "d")


def test_a_finished_run_answers_with_its_stored_envelope() -> None:
    result = decision(record("failed"))
    assert result.action == "finished" and json.loads(result.envelope or "") == {"ok": 1}


def test_resuming_with_other_inputs_is_refused_with_the_store_in_the_message() -> None:
    with pytest.raises(InputsMismatch) as caught:
        decision(record(digest="a" * 64), inputs_hash="b" * 64)
    assert str(caught.value) == (
        "checkpoint store runs.db: run 'r1' was started with other inputs (inputs hash "
        "aaaaaaaaaaaa, now bbbbbbbbbbbb); resume it with the inputs it started with, or pass "
        "another --run-id"
    )


def test_a_run_id_of_another_workflow_is_refused() -> None:
    with pytest.raises(WorkflowMismatch, match="run 'r1' belongs to workflow 'other', not 'w'"):
        decision(record(workflow="other"))


# -- inputs, URLs, durations, JSON ---------------------------------------------------------------


def test_inputs_hash_ignores_key_order_and_sees_values() -> None:
    assert inputs_hash({"a": 1, "b": [1, 2]}) == inputs_hash({"b": [1, 2], "a": 1})
    assert inputs_hash({"a": 1}) != inputs_hash({"a": 2})
    assert len(inputs_hash({})) == 64


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30), ("15m", 900), ("12h", 43200), ("7d", 604800), ("2w", 1209600),
    ("1d12h", 129600), ("1.5h", 5400), (" 7D ", 604800),
])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "7", "d", "7x", "7d junk", "-1d"])
def test_parse_duration_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(ValueError, match="write a number and a unit, like 30s, 15m, 12h, 7d or 2w"):
        parse_duration(text)


def test_passwords_in_urls_are_masked() -> None:
    assert mask("postgresql://u:s3cret@db:5432/x") == "postgresql://u:***@db:5432/x"
    assert mask("postgresql://u@db/x") == "postgresql://u@db/x"
    assert mask("runs.db") == "runs.db"


@pytest.mark.parametrize(("url", "path"), [
    ("runs.db", "runs.db"), ("./a/runs.db", "./a/runs.db"), ("/tmp/r.db", "/tmp/r.db"),
    ("sqlite:///rel/runs.db", "rel/runs.db"), ("sqlite:////abs/runs.db", "/abs/runs.db"),
])
def test_sqlite_urls(url: str, path: str) -> None:
    parsed = parse_store_url(url)
    assert (parsed.kind, parsed.path, parsed.synchronous) == ("sqlite", path, "normal")


def test_sqlite_options() -> None:
    parsed = parse_store_url("sqlite:///r.db?synchronous=FULL&timeout=0.5")
    assert (parsed.synchronous, parsed.timeout) == ("full", 0.5)


def test_postgres_url_takes_its_schema_out_of_the_dsn() -> None:
    parsed = parse_store_url("postgres://u:pw@h:5433/db?schema=runs_1&sslmode=disable")
    assert parsed.kind == "postgresql" and parsed.schema == "runs_1"
    assert parsed.dsn == "postgresql://u:pw@h:5433/db?sslmode=disable"
    assert parsed.label == "postgres://u:***@h:5433/db?schema=runs_1&sslmode=disable"
    assert parse_store_url("postgresql://h/db").schema == "kflow"


@pytest.mark.parametrize(("url", "message"), [
    ("mysql://u:pw@h/db", "checkpoint store mysql://u:***@h/db: unsupported scheme 'mysql'; "
     "use a file path, sqlite:///path or postgresql://..."),
    ("sqlite://runs.db", "checkpoint store sqlite://runs.db: write sqlite:///relative/path.db "
     "or sqlite:////absolute/path.db"),
    ("sqlite:///:memory:", "checkpoint store sqlite:///:memory:: needs a file path (a store in "
     "memory cannot outlive the run)"),
    ("sqlite:///r.db?synchronous=off", "checkpoint store sqlite:///r.db?synchronous=off: "
     "synchronous must be normal, full or extra"),
    ("sqlite:///r.db?mode=ro", "checkpoint store sqlite:///r.db?mode=ro: unknown option 'mode'; "
     "known: synchronous, timeout"),
    ("sqlite:///r.db?timeout=soon", "checkpoint store sqlite:///r.db?timeout=soon: timeout must "
     "be seconds, got 'soon'"),
    ("postgresql://h/db?schema=no-dash", "checkpoint store postgresql://h/db?schema=no-dash: "
     "schema 'no-dash' is not a plain SQL identifier"),
    ("postgresql://h:port/db", "checkpoint store postgresql://h:port/db: not a valid DSN"),
    ("", "checkpoint store '': empty URL"),
])
def test_bad_urls_say_what_would_work(url: str, message: str) -> None:
    with pytest.raises(BadStoreURL) as caught:
        parse_store_url(url)
    assert str(caught.value).startswith(message)


def render(value: object) -> str:  # an envelope-like JSON-safe rendering
    return json.dumps(value, default=str)


def test_encode_tells_which_outputs_round_trip() -> None:
    assert encode({"a": [1, 2.5, None, "x"]}, plain_dumps) == ('{"a":[1,2.5,null,"x"]}', True)
    assert encode((1, 2), plain_dumps)[1] is False  # restored as a list: not the same value
    assert encode({1: "a"}, plain_dumps)[1] is False  # keys come back as strings
    assert encode(float("nan"), plain_dumps) == (None, False)  # strict JSON cannot say NaN
    when = datetime.datetime(2024, 1, 2, 3, 4, 5)
    assert encode({"at": when}, plain_dumps) == (None, False)
    assert encode({"at": when}, render) == ('{"at": "2024-01-02 03:04:05"}', False)


def test_stored_items_know_which_indexes_are_done() -> None:
    rows = [ChunkRow(0, 3, "[1,2,3]", "[]"), ChunkRow(5, 2, "[6,null]", '[[6,"boom","E"]]')]
    items = StoredItems(rows)
    assert items.count == 5
    assert [i for i in range(8) if i in items] == [0, 1, 2, 5, 6]
    assert items.pending(8) == [range(3, 5), range(7, 8)]
    assert items.pending(2) == []
    assert list(items.results()) == [(0, 1), (1, 2), (2, 3), (5, 6)]
    assert items.errors() == [{"index": 6, "error": "boom", "error_type": "E"}]
    assert StoredItems([]).pending(3) == [range(0, 3)]


@pytest.mark.parametrize(("value", "exact"), [
    ({"a": [{"b": [1, {"c": None, "d": 2.5}]}, "x"]}, True),
    ({"a": [{"b": [1, {"c": (1,)}]}]}, False),  # a tuple deep down
    ({"a": [{"b": [1, {2: "two"}]}]}, False),  # a non-str key deep down
    ([True, False, None, "s", 0, -1, 1e300], True),
    ([{"x": 1}] * 3, True),  # the same dict three times is fine
    ({"r": list(range(2000)), "s": {"a": [1.5] * 2000}}, True),  # long lists beside dicts
    ({"r": list(range(2000)), "s": {"a": [*range(2000), {"b": (1,)}]}}, False),
])
def test_encode_looks_all_the_way_down(value: object, exact: bool) -> None:
    assert encode(value, plain_dumps)[1] is exact
    assert encode(value, envelope_dumps)[1] is exact


@pytest.mark.parametrize("value", [
    {"x": float("nan")}, [1.5, float("inf")], {"a": [None, -float("inf")]},
    [[1], [2, {"a": (1,)}]],  # a tuple below a level that mixes lists, ints and dicts
    [[1], [2, {"a": [{3: "three"}]}]],  # a non-str key there
    [*range(2000), (1,)], {"r": [*range(2000), float("nan")], "s": {"a": 1}},  # long lists
])
def test_what_the_envelope_renders_differently_is_not_exact(value: object) -> None:
    # The envelope writes NaN as "NaN": restored, a string would reach the next node.
    assert encode(value, envelope_dumps)[1] is False


# JSON-like values with what JSON cannot give back mixed in: tuples, int keys, NaN, big ints.
_leaves = (st.none() | st.booleans() | st.integers(-(2**80), 2**80) | st.floats()
           | st.sampled_from([float("nan"), float("inf"), -float("inf")]) | st.text(max_size=4))
_values = st.recursive(
    _leaves,
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner)
    | st.dictionaries(st.text(max_size=3) | st.integers(0, 3), inner, max_size=3),
    max_leaves=12,
)


def _has_nan(value: object) -> bool:
    if isinstance(value, float):
        return value != value
    if isinstance(value, dict):
        return any(map(_has_nan, value.values()))
    if isinstance(value, list | tuple):
        return any(map(_has_nan, value))
    return False


@given(_values)
def test_exact_means_restored_as_it_was(value: object) -> None:
    for dumps in (plain_dumps, envelope_dumps):
        text, exact = encode(value, dumps)
        restored = json.loads(text) if text is not None else None
        assert exact == (text is not None and not _has_nan(value) and _same(restored, value))


def _same(restored: object, value: object) -> bool:
    """Equal and of the same types all the way down (a tuple is not a list here)."""
    if type(restored) is not type(value):
        return False
    if isinstance(value, dict):
        return restored.keys() == value.keys() and all(  # type: ignore[attr-defined]
            _same(restored[k], value[k]) for k in value)  # type: ignore[index]
    if isinstance(value, list):
        return len(restored) == len(value) and all(  # type: ignore[arg-type]
            map(_same, restored, value))  # type: ignore[call-overload]
    return restored == value
