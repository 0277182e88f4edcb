"""Hypothesis strategies for random workflow IRs, as JSON (the way `kflowc build ir.json`
reads them): random DAGs of every pattern kind, hostile ids, names and strings, random
code, and parameters that are usually right and sometimes out of range, wrong-typed or
Python source. As attrs does for random classes (tests/strategies.py there)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

# Text that has broken code generators: quotes, backslashes, line breaks of every kind,
# NUL, lone surrogates, source to inject, and names of things generated code uses.
NASTY = [
    '"', "'", '"""', "'''", "\\", "\n", "\r", "\u2028", "\x0c", "\x00", "\ud800", "#", "{",
    "}", "{{", "%s", "); import os; (", "__import__('os').system('echo PWNED')", "rt",
    "asyncio", "operations", "chunk", "NODES", "run", "node_a", "class", "None", " ",
]

text = st.one_of(
    st.sampled_from(NASTY),
    st.text(min_size=0, max_size=12),
    st.lists(st.sampled_from(NASTY), min_size=1, max_size=4).map("".join),
)
names = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
wrong = st.one_of(text, st.integers(-5, 5), st.floats(allow_nan=True, allow_infinity=True),
                  st.none(), st.booleans(), st.lists(st.integers(), max_size=2))


def usually(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any] = wrong, *,
            odds: int = 10) -> st.SearchStrategy[Any]:
    """A good value, but one time in `odds` anything at all (`bad`)."""
    return st.sampled_from([False] * (odds - 1) + [True]).flatmap(
        lambda is_bad: bad if is_bad else good)


# Valid names of things generated code uses: no workflow may break by choosing them.
SHADOWING = ["rt", "asyncio", "chunk", "operations", "outcome", "items", "key", "lookup",
             "node_a", "run", "NODES"]
node_ids = usually(st.one_of(names, st.sampled_from(SHADOWING), text.filter(bool)),
                   text.filter(bool))
# Input names connections feed: names, names of generated things, and now and then junk.
inputs = usually(st.one_of(names, st.sampled_from(SHADOWING)),
                 st.sampled_from(["class", "a b", "x\x00", "1x", ""]))


def code_for(reads: list[str]) -> st.SearchStrategy[str]:
    """A code string that uses the inputs `reads`, or sometimes something broken."""
    terms = [*reads, "1"]
    good = st.builds(
        lambda picks, n, s: f"result = {{'v': {' + '.join(picks) or '0'} + {n}, 's': {s!r}}}",
        st.lists(st.sampled_from(terms), max_size=3), st.integers(0, 9),
        text.filter(lambda t: "\x00" not in t and not any("\ud800" <= c <= "\udfff" for c in t)),
    )
    # Modules the guide uses without importing them: the module's header imports them.
    imports = st.sampled_from(["result = json.dumps([1])", "result = math.floor(2.5)",
                               "import re\nresult = re.escape('a.b')"])
    good = st.one_of(good, good, imports)
    broken = st.one_of(
        st.just("result = ("), st.just("yield 1"), st.just("result = undefined_thing"),
        st.just("x = globals().get('opt', [])\nresult = x"),
        st.just("raise ValueError('boom')"), text,
    )
    return usually(good, broken, odds=8)


def _block(text_: str) -> dict[str, Any]:
    return {"text": text_, "origin": None, "exact": False}


def _options(**extra: Any) -> dict[str, Any]:
    return {"timeout": 30.0, "retry": None, "error_handler": None, "required_resources": [],
            "description": None, **extra}


@st.composite
def node(draw: st.DrawFn, node_id: str, reads: list[str]) -> dict[str, Any]:
    kind = draw(st.sampled_from(["code", "code", "parallel_map", "rate_limited",
                                 "circuit_breaker", "batch_processor", "parallel_fetch",
                                 "retry_with_backoff"]))
    options = _options(description=draw(usually(st.one_of(st.none(), names), text)))
    params: dict[str, Any] = {}
    code: dict[str, Any] | None = _block(draw(code_for(reads)))
    codes: list[Any] = []
    if kind == "parallel_map":
        code = _block("async def process_item(item):\n    return item")
        params = {"max_workers": draw(usually(st.integers(1, 4))),
                  "batch_size": draw(usually(st.one_of(st.none(), st.integers(1, 3)))),
                  "timeout_per_item": draw(usually(st.sampled_from([5.0, None]))),
                  "input_field": draw(usually(st.just("items"), inputs))}
    elif kind == "rate_limited":
        params = {"requests_per_second": draw(usually(st.sampled_from([1000.0, 500]))),
                  "burst_size": draw(usually(st.one_of(st.none(), st.integers(5, 50))))}
    elif kind == "circuit_breaker":
        params = {"failure_threshold": draw(usually(st.integers(1, 5))),
                  "reset_timeout": draw(usually(st.sampled_from([60.0, 5])))}
    elif kind == "batch_processor":
        code = _block("batch_results.extend(items)")
        params = {"batch_size": draw(usually(st.integers(1, 4)))}
    elif kind == "parallel_fetch":
        code = None
        keys = draw(st.lists(text.filter(bool), min_size=1, max_size=3, unique=True))
        codes = [[key, _block(draw(code_for(reads)))] for key in keys]
        params = {"timeout_per_operation": draw(usually(st.sampled_from([5.0, None])))}
    elif kind == "retry_with_backoff":
        options["retry"] = {
            "max_attempts": draw(usually(st.integers(1, 2))), "initial_delay": 0.0,
            "backoff_factor": draw(usually(st.sampled_from([1.0, 2.0]))), "max_delay": 0.0,
            "retry_exceptions": draw(usually(st.just(["ValueError"]),
                                             st.just(["nope.Missing"]))),
            "jitter": False,
        }
    return {"id": node_id, "kind": kind, "code": code, "options": options, "params": params,
            "location": None, "codes": codes}


@st.composite
def workflow_ir(draw: st.DrawFn) -> str:
    """An IR file's text: a random DAG (connections go forward, now and then backward or
    to a node that does not exist)."""
    ids = draw(st.lists(node_ids, min_size=1, max_size=5, unique=True))
    nodes, connections = [], []
    for index, node_id in enumerate(ids):
        feeds: list[str] = []
        for source in draw(st.lists(st.sampled_from(ids[:index]), max_size=2, unique=True)
                           if index else st.just([])):
            name = draw(inputs)
            feeds.append(name)
            connections.append({"source": source, "target": node_id, "input": name,
                                "path": draw(usually(st.sampled_from([[], ["v"]]),
                                                     st.just(["missing"]))),
                                "location": None})
        reads = [f for f in feeds if f.isidentifier()]
        nodes.append(draw(node(node_id, reads)))
    if draw(st.integers(0, 19)) == 0 and len(ids) > 1:  # a cycle, or a dangling connection
        connections.append({"source": ids[-1], "target": draw(st.sampled_from([ids[0], "ghost"])),
                            "input": "back", "path": [], "location": None})
    data = {"ir_version": 2, "name": draw(usually(names, text)), "description": None,
            "nodes": nodes, "connections": connections, "resources": [], "source_file": None}
    return json.dumps(data)
