"""LibCST transformers, before/after (as LibCST's own codemod tests do)."""

from __future__ import annotations

import textwrap

import libcst as cst
import pytest

from kflow.transforms import (
    GetResource,
    LoggerNames,
    OptionalInputs,
    as_function_body,
    return_result,
)


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


# The body kflow writes without LibCST (code_analysis.plain_body) must be what the LibCST
# path writes, once black has formatted both: same statements, same strings, same lines.
TRICKY = [
    "x = 1\nresult = x",
    'text = """line one\n  line two\nline three"""\nresult = text',
    "text = f'''a\n{1 + 1}\n  b'''\nresult = text",
    "@staticmethod\ndef f():\n    return 1\nresult = f",
    "if a:\n\tb = 1\nelse:\n\tb = 2\nresult = b",
    "total = 1 + \\\n    2\nresult = total",
    "items = [\n  1,\n    2,\n]\n# between\nresult = items",
    "for i in range(3):\n    if i:\n        # inside\n        pass\nresult = i",
    "async def process_item(item):\n    return item",
    "s = ('a'\n     'b')\nresult = s",
    "x = '''\n    keep\n'''; result = x",
]


def _golden_codes() -> list[str]:
    from golden_cases import cases

    found = []
    for case in cases():
        workflow, _ = case.load()
        for node in workflow.nodes:
            found += [node.code.text] if node.code is not None else []
            found += [block.text for _, block in node.codes]
    return found


@pytest.mark.parametrize("code", TRICKY + _golden_codes())
def test_the_plain_body_is_the_libcst_body_once_black_formats_it(code):
    import ast

    from kflow.blackfmt import format_body
    from kflow.code_analysis import plain_body

    text = textwrap.dedent(code)
    plain = plain_body(text, ast.parse(text), "result")
    if plain is None:  # comments outside the statements: the LibCST path is taken
        assert "#" in text
        return
    libcst_body = as_function_body(return_result(cst.parse_module(text)))
    assert format_body(plain) == format_body(libcst_body)


def test_awaited_get_resource_becomes_the_resource_name() -> None:
    t = GetResource()
    code = textwrap.dedent(
        """
        db = await get_resource("main_db")
        rows = await (await get_resource('cache')).get("k")
        other = get_resource(name)
        """
    )
    out = cst.MetadataWrapper(cst.parse_module(code)).visit(t).code
    assert out == textwrap.dedent(
        """
        db = main_db
        rows = await (cache).get("k")
        other = get_resource(name)
        """
    )
    assert t.found == {"main_db": (2, 5), "cache": (3, 14)}
    assert [p[1:] for p in t.problems] == [(4, 8)]


def test_get_logger_of_dunder_name_gets_the_nodes_name() -> None:
    t = LoggerNames("kflow.etl.load")
    out = transform(
        """
        logger = logging.getLogger(__name__)
        other = getLogger(__name__)
        root = logging.getLogger()
        named = logging.getLogger("mine")
        where = __name__
        """,
        t,
    )
    assert out == textwrap.dedent(
        """
        logger = logging.getLogger("kflow.etl.load")
        other = getLogger("kflow.etl.load")
        root = logging.getLogger()
        named = logging.getLogger("mine")
        where = __name__
        """
    )
    assert t.changed == 2
