"""LibCST transformers, before/after (as LibCST's own codemod tests do)."""

from __future__ import annotations

import textwrap

import libcst as cst

from kflow.transforms import OptionalInputs, return_result


def transform(code: str, transformer: cst.CSTTransformer) -> str:
    return cst.parse_module(textwrap.dedent(code)).visit(transformer).code


def test_globals_get_with_immutable_default_becomes_the_name() -> None:
    t = OptionalInputs()
    out = transform(
        """
        flag = globals().get('needs_alerting', False)
        name = locals().get("who")
        """,
        t,
    )
    assert out == textwrap.dedent(
        """
        flag = needs_alerting
        name = who
        """
    )
    assert {o.name: (o.default, o.in_signature) for o in t.found.values()} == {
        "needs_alerting": ("False", True),
        "who": ("None", True),
    }


def test_globals_get_with_mutable_default_is_not_shared_between_runs() -> None:
    t = OptionalInputs()
    out = transform("alerts = globals().get('alerts', [])\n", t)
    assert out == "alerts = (alerts if alerts is not rt.MISSING else [])\n"
    assert t.found["alerts"].in_signature is False


def test_other_calls_are_left_alone() -> None:
    code = "a = globals()['x']\nb = os.environ.get('HOME', '/')\nc = globals().get(key)\n"
    assert transform(code, OptionalInputs()) == code


def test_return_result_appends_one_statement() -> None:
    module = return_result(cst.parse_module("x = 1\nresult = x\n"))
    assert module.code == "x = 1\nresult = x\nreturn result\n"
