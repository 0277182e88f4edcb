"""Node kinds are the compiler's unit: each one module under compiler/kinds/ (its
Params, its authoring function, its analysis and emission) and its template."""

from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path

import pytest

import kflow.kinds as kinds_package
from kflow import AsyncLocalRuntime, AsyncPatterns, AsyncWorkflowBuilder
from kflow.kinds import kind_named, kinds, patterns
from kflow.values import BadValue, Params

COMPILER = Path(kinds_package.__file__).resolve().parent.parent


def test_every_kind_has_checked_frozen_params():
    for name, kind in kinds().items():
        assert issubclass(kind.Params, Params), name
        params = dataclasses.fields(kind.Params)
        assert kind.Params.__dataclass_params__.frozen, name
        for field in params:
            assert "check" in field.metadata, f"{name}.{field.name} is not checked"


def test_asyncpatterns_is_the_kinds_authoring_functions():
    assert set(patterns()) == {"rate_limited", "parallel_fetch", "circuit_breaker",
                               "timeout_with_fallback", "cache_aside", "retry_with_backoff",
                               "batch_processor"}
    for name, function in patterns().items():
        assert getattr(AsyncPatterns, name) is function


def test_unknown_kind_suggests_the_close_one():
    with pytest.raises(BadValue) as info:
        kind_named("rate_limit")
    assert info.value.hint == "did you mean 'rate_limited'?"


def test_what_a_kind_means_lives_in_its_own_module():
    """No compiler module outside kinds/ names a pattern's kind: analysis, codegen and the
    graph ask the kind instead."""
    # ("code", "resource" and "fallback" are also words for other things: handler kinds,
    # resource functions.)
    pattern_kinds = [k for k in kinds() if k not in ("code", "resource", "fallback")]
    offenders = []
    for path in COMPILER.glob("*.py"):
        text = path.read_text()
        for kind in pattern_kinds:
            if re.search(rf"[\"']{kind}[\"']", text):
                offenders.append(f"{path.name}: {kind}")
    assert offenders == []


NEW_KIND = '''
"""`twice`: a pattern added as one module: the code's result, doubled."""
from kflow.kinds._authoring import checked_call, code_block, node_options
from kflow.kinds._base import Kind
from kflow.locate import caller_site


class TwiceKind(Kind):
    name = "twice"

    def emit(self, m, a):
        return m.code_node(a)


@checked_call("KF016")
def twice(builder, node_id, code):
    site = caller_site()
    block = code_block(code + "\\nresult = result * 2", site, None)
    return builder.add_node(builder.node(node_id, "twice", site, code=block,
                                         options=node_options(site)))


KINDS = (TwiceKind(),)
PATTERNS = {"twice": twice}
'''


@pytest.fixture
def extra_kind_module(tmp_path, monkeypatch):
    (tmp_path / "twice.py").write_text(NEW_KIND)
    monkeypatch.setattr(kinds_package, "__path__", [*kinds_package.__path__, str(tmp_path)])
    for cached in (kinds_package._modules, kinds_package.kinds, kinds_package.patterns):
        cached.cache_clear()
    patterns_module = importlib.reload(importlib.import_module("kflow.patterns"))
    yield patterns_module.AsyncPatterns
    monkeypatch.undo()
    for cached in (kinds_package._modules, kinds_package.kinds, kinds_package.patterns):
        cached.cache_clear()
    importlib.reload(importlib.import_module("kflow.patterns"))


async def test_a_new_pattern_is_one_new_module(extra_kind_module):
    b = AsyncWorkflowBuilder("w")
    extra_kind_module.twice(b, "t", "result = 21")
    envelope = await AsyncLocalRuntime().execute_workflow_async(b.build(), {})
    assert envelope["results"] == {"t": 42}, envelope["errors"]
